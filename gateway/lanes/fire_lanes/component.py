"""The fire-lanes component: the runtime glue between cameras, the inference thread and the lanes.

One asyncio task per watched camera steps its `CameraAnalyzer` every `STEP_S` with the camera's
latest frame from the `FrameHub`, runs the detector on the engine's single thread when the
analyzer asks, and submits the resulting records to the pipeline. Lane state is saved to the
state store at every transition, the moving dwell clock and last sighting at most every
`save_interval_s` and at `stop`. `run()` steps every watched camera in its own task; one camera's
crash ends `run()`, and the runtime's supervisor restarts the component (never the gateway).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from gateway.core import Record
from gateway.core.clock import local_zone
from gateway.core.frames import Frame
from gateway.inference.catalog import ModelPlaces, configured, pick
from gateway.inference.evidence import EvidenceStore
from gateway.lanes import LaneDeps
from gateway.lanes.fire_lanes.analyzer import CameraAnalyzer
from gateway.lanes.fire_lanes.annotate import jpeg
from gateway.lanes.fire_lanes.config import FireLaneConfig, VisionSection
from gateway.lanes.fire_lanes.detector import Detection, Detector
from gateway.lanes.fire_lanes.firelane import LaneWatch
from gateway.lanes.fire_lanes.report import FireLaneReport

log = logging.getLogger("lintel.vision")

NS = "fire_lane"
STEP_S = 0.5


class FireLaneComponent:
    name = "fire_lanes"

    def __init__(
        self, vision: VisionSection, inference: ModelPlaces, lanes: list[FireLaneConfig], deps: LaneDeps
    ) -> None:
        self.vision = vision
        self.deps = deps
        self.manifest = pick(vision.detector, configured(inference))
        # one inference thread for every camera lane, owned (and closed) by whoever gave it
        self.engine = deps.engine()
        self.detector: Detector | None = None
        folder = Path(vision.evidence_dir) if vision.evidence_dir else deps.state_dir / "evidence"
        self.evidence = EvidenceStore(
            folder, vision.evidence_retention_days, int(vision.evidence_max_mb * 1e6)
        )
        saved = deps.store.load(NS)
        tz = local_zone(deps.timezone)
        by_camera: dict[str, list[LaneWatch]] = {}
        for cfg in lanes:
            by_camera.setdefault(cfg.camera, []).append(LaneWatch(cfg, deps.book, tz, saved.get(cfg.id)))
        self.analyzers = {
            cam: CameraAnalyzer(cam, ls, self.evidence, self._save) for cam, ls in by_camera.items()
        }
        self.detect_ms_total = 0.0
        self.errors = 0

    def _save(self, lane: LaneWatch) -> None:
        self.deps.store.save(NS, {lane.config.id: lane.saved()})

    async def start(self) -> None:
        """Load and warm up the detector on the inference thread (raises ModelError)."""
        model = await self.engine.submit(self.engine.model, self.manifest)
        self.detector = Detector(model, self.vision.min_score, input_size=self.vision.detector_input())

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for camera_id in self.analyzers:
                group.create_task(self.run_camera(camera_id), name=f"fire-lane:{camera_id}")

    async def run_camera(self, camera_id: str) -> None:
        """Step, detect and tick one camera's lanes until cancelled.

        The detection runs as a task on the engine thread while this loop keeps ticking every
        `STEP_S`: with the inference queue backed up (four cameras on a Pi), a grace period still
        runs out on time. One detection per camera is in flight at a time; frames taken meanwhile
        are not analysed (each camera keeps only its latest frame anyway)."""
        analyzer = self.analyzers[camera_id]
        assert self.detector is not None
        detector = self.detector
        pending: tuple[Frame, float, asyncio.Future[list[Detection]]] | None = None
        try:
            while True:
                records: list[Record] = []
                if pending is not None and pending[2].done():
                    frame, started, job = pending
                    pending = None
                    self.detect_ms_total += (time.perf_counter() - started) * 1000
                    if job.cancelled():
                        pass  # the engine is shutting down
                    elif job.exception() is not None:
                        self.errors += 1
                        log.error("camera %s: detector failed: %r", camera_id, job.exception())
                    else:
                        # the moment the frame shows, not when a backed-up queue got to it
                        records += analyzer.apply(frame, job.result(), frame.ts_ms)
                if pending is None:
                    frame_now = self.deps.frames.latest(camera_id)
                    stepped, run = analyzer.step(
                        frame_now, self.deps.frames.online(camera_id), self.deps.clock.time_ms()
                    )
                    records += stepped
                    if run and frame_now is not None:
                        job = asyncio.ensure_future(self.engine.submit(detector.detect, frame_now.image))
                        pending = (frame_now, time.perf_counter(), job)
                records += analyzer.tick(self.deps.clock.time_ms())
                for record in records:
                    self.deps.emit(record)
                await asyncio.sleep(STEP_S)
        finally:
            if pending is not None:
                pending[2].cancel()

    def snapshot(self, camera_id: str) -> tuple[str, bytes] | None:
        """Save the camera's latest analysed frame (lanes, boxes, states) as evidence."""
        analyzer = self.analyzers.get(camera_id)
        if analyzer is None or analyzer.last_frame is None:
            return None
        picture = jpeg(analyzer.annotated(caption=f"{camera_id} snapshot"))
        return self.evidence.save(camera_id, picture, self.deps.clock.time_ms()), picture

    def report(self) -> FireLaneReport:
        now = self.deps.clock.time_ms()
        runs = sum(m.runs for m in self.engine.models())
        return FireLaneReport(
            self.manifest.name,
            runs,
            round(self.detect_ms_total / runs, 1) if runs else None,
            self.errors,
            self.evidence.saved,
            tuple(lane.report(now) for analyzer in self.analyzers.values() for lane in analyzer.lanes),
        )

    async def stop(self) -> None:
        for analyzer in self.analyzers.values():
            analyzer.flush()
