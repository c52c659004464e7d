"""The capture thread: open a stream, decode frames, keep only the latest one.

OpenCV's read blocks. Its timeouts (`CAP_PROP_OPEN_TIMEOUT_MSEC`, `CAP_PROP_READ_TIMEOUT_MSEC`) are
set, but they are not enough: on a frozen RTSP server a read with a 3 s timeout returned after 9 s.
So a `Capture` runs one *worker* thread at a time and keeps a stall watchdog outside it
(`check_stall`, called by the source every half second): a worker whose read has not returned
within `stall_s` is abandoned — marked stale, left to finish its read and exit on its own — and a
fresh worker reopens the stream after a backoff. A stale worker never publishes a frame.

Open failures, read errors and the end of a file are handled inside the worker: release, wait
(exponential backoff with jitter, reset after frames flow again), reopen. Files can be played at
their own frame rate (`realtime`) and looped, so a clip behaves like a camera.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import cv2

from drivers.camera.config import CameraConfig, redact
from drivers.camera.opening import (
    GATE_SLACK_S,
    CameraRefused,
    capture_options,
    size_problem,
    tls_preflight,
    with_capture_options,
)
from gateway.core import Backoff
from gateway.core.frames import Frame

log = logging.getLogger("lintel.camera")

MAX_STUCK_WORKERS = 4  # abandoned workers still inside a read; beyond this, wait instead of piling up


def stream_address(config: CameraConfig) -> str:
    """The address OpenCV opens: credentials filled in, `file://` stripped."""
    url = config.url
    if url.startswith("file://"):
        return url.removeprefix("file://")
    if config.username and "://" in url:
        password = config.password()
        scheme, rest = url.split("://", 1)
        secret = f"{config.username}:{password}" if password else config.username
        return f"{scheme}://{secret}@{rest}"
    return url


def open_capture(config: CameraConfig, restart_clock: Callable[[], None] | None = None) -> cv2.VideoCapture:
    """Open the stream with OpenCV's timeouts. Returns an opened capture or raises OSError.

    A TLS camera is verified first (`tls_preflight`): an untrusted one never receives a request,
    so never its credentials. A stream over max_width × max_height is refused (`CameraRefused`)
    on the size FFmpeg reports at open, before a frame is decoded. `restart_clock` is called as
    each phase (our handshake, FFmpeg's open once the option gate is held) begins, so the stall
    watchdog gives each phase its own budget.
    """
    if config.tls and config.tls_verify:
        tls_preflight(config, config.open_timeout_s)
        if restart_clock is not None:
            restart_clock()
    options = capture_options(config)
    address = stream_address(config)
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(config.open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(config.read_timeout_s * 1000),
    ]  # fmt: skip
    if config.decode_threads:
        # OpenCV's default is one decoding thread per core, each with its own frames in flight:
        # memory a sub-stream does not need (bench/memory_steps.py --h264), and the cameras
        # already decode in parallel, one thread each.
        params += [cv2.CAP_PROP_N_THREADS, config.decode_threads]
    if config.kind == "usb":
        cap = cv2.VideoCapture(address, cv2.CAP_V4L2)
    else:
        cap = with_capture_options(
            options,
            lambda: cv2.VideoCapture(address, cv2.CAP_FFMPEG, params),
            budget_s=config.open_timeout_s + GATE_SLACK_S,
            on_enter=restart_clock,
        )
    if not cap.isOpened():
        cap.release()
        raise OSError(f"cannot open {redact(config.url)}")
    problem = size_problem(
        config, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    )
    if problem is not None:
        cap.release()
        raise CameraRefused(problem)
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return cap


def _restart_clock(worker: _Worker) -> None:
    worker.in_read_since = time.monotonic()


class _Worker:
    """One attempt-loop thread; `stale` tells it to stop publishing and exit."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.stale = False
        self.in_read_since: float | None = None
        self.opening = False
        self.thread: threading.Thread | None = None


class Capture:
    """Latest-frame capture of one stream with reconnects and a stall watchdog.

    Thread-safe for one reader: `latest()` may be called from any thread.
    `clock_ms` gives wall-clock milliseconds for frame stamps (the gateway's injectable clock).
    """

    def __init__(self, config: CameraConfig, clock_ms: Callable[[], int]) -> None:
        self.config = config
        self.clock_ms = clock_ms
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._worker: _Worker | None = None
        self._generation = 0
        self.backoff = Backoff(config.reconnect_initial_s, config.reconnect_max_s)
        self.opens = 0
        self.stalls = 0
        self.abandoned: list[_Worker] = []
        self.last_error: str | None = None
        self.last_frame_mono: float | None = None
        self.width = 0
        self.height = 0
        self.stream_fps = 0.0
        self.decode_s_total = 0.0

    # -- reader side --------------------------------------------------------------------------
    def latest(self) -> Frame | None:
        with self._lock:
            return self._frame

    @property
    def frames(self) -> int:
        return self._seq

    def start(self) -> None:
        self._spawn(delay_s=0.0)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._worker is not None:
                self._worker.stale = True

    def join(self, timeout_s: float) -> bool:
        """Wait for the workers to release the stream (after `stop`). True if all did.

        A process that exits while a worker is inside OpenCV aborts ("terminate called without an
        active exception"), so the source waits for its workers before it returns.
        """
        deadline = time.monotonic() + timeout_s
        workers = [w for w in (self._worker, *self.abandoned) if w is not None and w.thread is not None]
        for worker in workers:
            assert worker.thread is not None
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        return not any(w.thread is not None and w.thread.is_alive() for w in workers)

    def check_stall(self, now_mono: float) -> bool:
        """Abandon the current worker if its read has hung for `stall_s`. True if it did."""
        worker = self._worker
        if worker is None or worker.in_read_since is None:
            return False
        # Opening an RTSP stream takes seconds (probing); it gets its own budget on top.
        limit = self.config.stall_s + (self.config.open_timeout_s if worker.opening else 0.0)
        if now_mono - worker.in_read_since < limit:
            return False
        self.stalls += 1
        self.last_error = f"stalled: no frame for {now_mono - worker.in_read_since:.1f} s"
        log.warning("camera %s %s; abandoning the capture and reopening", self.config.id, self.last_error)
        with self._lock:
            worker.stale = True
            self.abandoned.append(worker)
        self._spawn(delay_s=self.backoff.next_delay())
        return True

    def stuck_workers(self) -> int:
        self.abandoned = [w for w in self.abandoned if w.thread is not None and w.thread.is_alive()]
        return len(self.abandoned)

    # -- worker side --------------------------------------------------------------------------
    def _spawn(self, delay_s: float) -> None:
        with self._lock:
            self._generation += 1
            worker = _Worker(self._generation)
            self._worker = worker
        thread = threading.Thread(
            target=self._run,
            args=(worker, delay_s),
            name=f"camera-{self.config.id}-{worker.generation}",
            daemon=True,
        )
        worker.thread = thread
        thread.start()

    def _wait(self, worker: _Worker, seconds: float) -> bool:
        """Sleep unless stopped; False when the worker should exit."""
        self._stop.wait(seconds)
        return not (self._stop.is_set() or worker.stale)

    def _run(self, worker: _Worker, delay_s: float) -> None:
        if not self._wait(worker, delay_s):
            return
        while not (self._stop.is_set() or worker.stale):
            # Do not pile up threads stuck in reads the OS will not interrupt.
            if self.stuck_workers() >= MAX_STUCK_WORKERS:
                if not self._wait(worker, self.config.stall_s):
                    return
                continue
            try:
                worker.in_read_since = time.monotonic()  # opening counts: a hung open is a stall too
                worker.opening = True
                cap = open_capture(self.config, lambda: _restart_clock(worker))
            except (OSError, cv2.error) as exc:
                worker.in_read_since = None
                worker.opening = False
                self.last_error = str(exc)
                if not self._wait(worker, self.backoff.next_delay()):
                    return
                continue
            worker.opening = False
            try:
                self._read_loop(worker, cap)
            finally:
                cap.release()
            worker.in_read_since = None
            if self.config.kind == "file" and not self.config.loop and self.last_error == "end of file":
                log.info("camera %s: end of the clip", self.config.id)
                return  # a clip that ended stays ended: the camera goes offline, the lane UNKNOWN
            if not self._wait(worker, self.backoff.next_delay()):
                return

    def _read_loop(self, worker: _Worker, cap: cv2.VideoCapture) -> None:
        self.opens += 1
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.stream_fps = fps if 0 < fps < 240 else 0.0
        pace = self.config.kind == "file" and self.config.realtime and self.stream_fps > 0
        started = time.monotonic()
        played = 0
        while not (self._stop.is_set() or worker.stale):
            worker.in_read_since = time.monotonic()
            ok, image = cap.read()
            done = time.monotonic()
            if worker.stale:
                return  # abandoned by the watchdog while reading: the new worker owns the camera
            if not ok or image is None:
                if self.config.kind == "file" and self.config.loop and played:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    started, played = time.monotonic(), 0
                    continue
                self.last_error = (
                    "end of file" if self.config.kind == "file" else "read failed (stream ended or timed out)"
                )
                return
            problem = size_problem(self.config, image.shape[1], image.shape[0])
            if problem is not None:
                # Bigger than the open check saw (V4L2). OpenCV's FFmpeg backend never gets here: it
                # scales later frames to the open-time size (the decoder's own buffer still grows).
                self.last_error = problem
                return
            self.decode_s_total += done - worker.in_read_since
            played += 1
            self.backoff.reset()
            with self._lock:
                if worker.stale:
                    return
                self._seq += 1
                self._frame = Frame(image, self.clock_ms(), self._seq)
                self.last_frame_mono = done
                self.height, self.width = image.shape[:2]
            worker.in_read_since = None
            if pace:
                ahead = started + played / self.stream_fps - time.monotonic()
                if ahead > 0 and not self._wait(worker, ahead):
                    return
