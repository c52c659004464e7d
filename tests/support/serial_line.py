"""An RS-485 line for tests: two socat pty pairs joined by a relay that paces bytes like the wire.

    gateway (pymodbus client) ── pty pair A ── relay ── pty pair B ── pymodbus RTU server

socat moves bytes instantly; the relay passes them at baud/10 bytes per second, in small slices,
so the receiver sees fragmented frames and real wire time (10 registers at 9600 baud ≈ 34 ms).
Faults, set by the test and applied to the next frames:
- `drop_units`: requests to these unit ids vanish (a dead or unplugged meter: no answer);
- `corrupt_responses`: flip a byte in the next N answers (CRC error);
- `garbage_before_responses`: noise bytes before the next N answers;
- `delay_responses_s`: hold the next answer this long (a late answer);
- `unplug()` / `replug()`: the gateway-side pty disappears and comes back under the same name.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import threading
import time
from pathlib import Path


def require_socat() -> str:
    path = shutil.which("socat")
    if path is None:
        raise RuntimeError("socat is not installed: scripts/test.sh installs it (apt-get install socat)")
    return path


class PtyPair:
    """`socat pty,link=a pty,link=b`: bytes written to one end come out of the other."""

    def __init__(self, a: Path, b: Path) -> None:
        self.a, self.b = a, b
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [require_socat(), f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not (self.a.exists() and self.b.exists()):
            if time.monotonic() > deadline:
                raise RuntimeError("socat did not create its ptys")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            self.proc = None
        deadline = time.monotonic() + 5
        while (self.a.exists() or self.b.exists()) and time.monotonic() < deadline:
            time.sleep(0.01)


class PacedLine:
    def __init__(self, folder: Path, baudrate: int = 9600) -> None:
        self.gateway_port = folder / "ttyGW"  # what the gateway opens
        self.server_port = folder / "ttyMETERS"  # what the simulated meters listen on
        self._client_pair = PtyPair(self.gateway_port, folder / "relay-a")
        self._server_pair = PtyPair(folder / "relay-b", self.server_port)
        self.bytes_per_s = baudrate / 10
        self.drop_units: set[int] = set()
        self.corrupt_responses = 0
        self.garbage_before_responses = 0
        self.delay_responses_s = 0.0
        self.requests_seen: list[int] = []  # unit id of every request frame that reached the relay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fds: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._server_pair.start()
        self._client_pair.start()
        self._open_relay()

    def _open_relay(self) -> None:
        a = os.open(self._client_pair.b, os.O_RDWR | os.O_NOCTTY)
        b = os.open(self._server_pair.a, os.O_RDWR | os.O_NOCTTY)
        self._fds = (a, b)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="paced-line")
        self._thread.start()

    def _close_relay(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._fds is not None:
            for fd in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fds = None

    def stop(self) -> None:
        self._close_relay()
        self._client_pair.stop()
        self._server_pair.stop()

    def unplug(self) -> None:
        """The USB adapter is pulled: the gateway's port vanishes."""
        self._close_relay()
        self._client_pair.stop()

    def replug(self) -> None:
        self._client_pair.start()
        self._open_relay()

    # -- relay ----------------------------------------------------------------------------------

    def _run(self) -> None:
        assert self._fds is not None
        client_fd, server_fd = self._fds
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([client_fd, server_fd], [], [], 0.05)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = self._read_frame(fd)
                except OSError:
                    return
                if not data:
                    continue
                if fd == client_fd:
                    self.requests_seen.append(data[0])
                    if data[0] in self.drop_units:
                        continue
                    self._paced_write(server_fd, data)
                else:
                    self._paced_write(client_fd, self._fault(data))

    def _read_frame(self, fd: int) -> bytes:
        """Bytes until the line has been quiet for ~2 ms (socat delivers a frame in one or more reads)."""
        data = os.read(fd, 512)
        while True:
            ready, _, _ = select.select([fd], [], [], 0.002)
            if not ready:
                return data
            data += os.read(fd, 512)

    def _fault(self, data: bytes) -> bytes:
        with self._lock:
            if self.delay_responses_s:
                time.sleep(self.delay_responses_s)
            if self.corrupt_responses:
                self.corrupt_responses -= 1
                data = data[:-1] + bytes([data[-1] ^ 0x5A])
            if self.garbage_before_responses:
                self.garbage_before_responses -= 1
                data = b"\x00\xff\x13" + data
        return data

    def _paced_write(self, fd: int, data: bytes) -> None:
        """Write at wire speed, 4 bytes at a time, on a fixed schedule (no drift from sleep jitter)."""
        start = time.monotonic()
        for i in range(0, len(data), 4):
            due = start + i / self.bytes_per_s
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                os.write(fd, data[i : i + 4])
            except OSError:
                return
        end = start + len(data) / self.bytes_per_s
        wait = end - time.monotonic()
        if wait > 0:
            time.sleep(wait)
