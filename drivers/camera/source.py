"""The `camera` source: runs a `Capture`, watches it, and reports the camera's health.

Records: `camera_online` (resolution, stream fps, time to first frame) when frames flow after a
start or an outage; `camera_offline` (warning, with the reason) when no frame has arrived for
`offline_after_s` — short reconnects do not flap; readings `fps` and `decode_ms` every
`stats_interval_s` while online. The frames themselves never become records: the source is a
`FrameSource` and the analytics pull its latest frame.
"""

from __future__ import annotations

import asyncio
import logging
import time

from drivers.camera.capture import Capture
from drivers.camera.config import CameraConfig, redact
from gateway.core import SourceContext
from gateway.core.devices import DeviceReport, PointMemory
from gateway.core.frames import Frame

log = logging.getLogger("lintel.camera")

TICK_S = 0.5


class CameraSource:
    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self.capture: Capture | None = None
        self._online = False
        self.memory = PointMemory()  # the latest fps/decode_ms readings and offline episode

    # -- DeviceReporter -------------------------------------------------------------------------
    def device_reports(self) -> list[DeviceReport]:
        """The camera's health: frames, reconnects and stalls of its capture, its latest fps."""
        cid, capture = self.config.id, self.capture
        offline_since = self.memory.offline_since_ms.get(cid)
        if capture is None:
            return [DeviceReport(cid, cid, "camera", None, None, None, {}, 0, ())]
        frame = capture.latest()
        reconnects = max(capture.opens - 1, 0)
        counters = {"frames": capture.frames, "reconnects": reconnects, "stalls": capture.stalls}
        known = capture.frames > 0 or offline_since is not None  # before either: still opening
        return [
            DeviceReport(
                cid,
                cid,
                "camera",
                self._online if known else None,
                frame.ts_ms if frame is not None else None,
                offline_since if not self._online else None,
                counters,
                capture.stalls,  # reconnects of a looping file are normal; a stall is not
                self.memory.points(cid),
                capture.last_error,
            )
        ]

    # -- FrameSource ----------------------------------------------------------------------------
    def latest_frame(self) -> Frame | None:
        return self.capture.latest() if self.capture is not None else None

    @property
    def online(self) -> bool:
        return self._online

    # -- Source ---------------------------------------------------------------------------------
    async def run(self, ctx: SourceContext) -> None:
        ctx = self.memory.tap(ctx)
        cfg = self.config
        capture = Capture(cfg, ctx.clock.time_ms)
        self.capture = capture
        started = time.monotonic()
        last_seen_frames = 0
        reported_online = offline_reported = False
        stats_due = started + cfg.stats_interval_s
        stats_frames, stats_decode = 0, 0.0
        capture.start()
        log.info("camera %s: opening %s", cfg.id, redact(cfg.url))
        try:
            while True:
                await asyncio.sleep(TICK_S)
                now = time.monotonic()
                capture.check_stall(now)
                ctx.progress()  # the source is alive even while the camera is not: outages are events
                frames = capture.frames
                if frames != last_seen_frames:
                    last_seen_frames = frames
                    self._online = True
                    if not reported_online:
                        reported_online, offline_reported = True, False
                        ctx.emit(
                            ctx.event(
                                "camera_online",
                                width=capture.width,
                                height=capture.height,
                                stream_fps=round(capture.stream_fps, 2),
                                first_frame_s=round(now - started, 2) if capture.opens == 1 else None,
                                reconnects=capture.opens - 1,
                            )
                        )
                        log.info("camera %s online: %dx%d", cfg.id, capture.width, capture.height)
                silent_s = now - (capture.last_frame_mono or started)
                if silent_s >= cfg.stall_s:
                    self._online = False  # analytics stop trusting the picture at once; the event waits
                if silent_s >= cfg.offline_after_s and not offline_reported:
                    reported_online, offline_reported = False, True
                    reason = capture.last_error or "no frame yet"
                    ctx.emit(ctx.event("camera_offline", "warning", reason=reason, silent_s=round(silent_s)))
                    log.warning("camera %s offline: %s", cfg.id, reason)
                if now >= stats_due:
                    seconds = cfg.stats_interval_s + (now - stats_due)
                    new_frames = frames - stats_frames
                    decode = capture.decode_s_total - stats_decode
                    if self._online and new_frames:
                        ctx.emit(ctx.reading("fps", round(new_frames / seconds, 2)))
                        ctx.emit(ctx.reading("decode_ms", round(decode / new_frames * 1000, 2)))
                    stats_frames, stats_decode = frames, capture.decode_s_total
                    stats_due = now + cfg.stats_interval_s
        finally:
            capture.stop()
            self._online = False
            # Shield: a second cancellation must not leave a worker inside OpenCV at exit.
            joined = await asyncio.shield(asyncio.to_thread(capture.join, cfg.read_timeout_s + 1.0))
            if not joined:
                log.warning("camera %s: a capture thread is still inside a read at stop", cfg.id)
