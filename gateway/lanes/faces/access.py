"""The face access lane at run time: cameras → inference thread → decisions → door pulses.

One asyncio task per camera takes its latest frame from the `FrameHub` every `interval_s` (a
frame is analysed once, whichever entrances watch that camera), runs the pipeline on the shared
inference thread, matches in memory and feeds each entrance on that camera (`entrance.py`: its
decision rule, events and door pulses). A resident's decision waits for its liveness check, run
as its own job on the inference thread; the camera's next frame is analysed after it. The
decision is finished on the event loop only if the lane still runs and the gallery still names
the same resident.

The gallery's `generation` is polled every second: an enrolment or a `faces delete` (CLI or
command) takes effect without a restart, and a deleted resident's templates leave memory. With a
`require = "face+tag"` entrance, the residents' tags (gallery, `tag_store.py`) are handed to the
`TagHub` at every reload so the BLE sources listen for them; the decision asks `second_factor.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.core import Clock, Record
from gateway.core.cadence import Cadence
from gateway.core.clock import local_zone
from gateway.core.frames import FrameHub
from gateway.core.tags import TagHub
from gateway.inference.catalog import Manifest
from gateway.inference.engine import InferenceEngine
from gateway.inference.evidence import EvidenceStore
from gateway.lanes import DoorOpener
from gateway.lanes.faces.config import FaceAccessConfig, FacesSection
from gateway.lanes.faces.decision import Decider, Passage
from gateway.lanes.faces.entrance import EntranceFlow, entrance_report
from gateway.lanes.faces.gallery import Gallery
from gateway.lanes.faces.keys import face_paths, key_beside_gallery
from gateway.lanes.faces.liveness import liveness_check
from gateway.lanes.faces.match import Matcher
from gateway.lanes.faces.outcome import Pending
from gateway.lanes.faces.passages import delete_resident, load_passages
from gateway.lanes.faces.pipeline import FacePipeline, build_pipeline, face_models
from gateway.lanes.faces.report import FaceAccessReport
from gateway.lanes.faces.second_factor import TagCheck
from gateway.lanes.faces.tag_store import ResidentTag, tags
from gateway.releases.formats import FormatGate
from gateway.storage.state import StateStore

log = logging.getLogger("lintel.faces")

GALLERY_POLL_S = 1.0


class FaceAccessWatch:
    def __init__(
        self,
        faces: FacesSection,
        entrances: list[FaceAccessConfig],
        hub: FrameHub,
        doors: Callable[[], DoorOpener],
        store: StateStore,
        clock: Clock,
        submit: Callable[[Record], bool],
        state_dir: Path,
        engine: InferenceEngine,
        models: dict[str, Manifest],
        timezone: str | None = None,
        tag_hub: TagHub | None = None,
    ) -> None:
        self.faces = faces
        self.tag_hub = tag_hub if tag_hub is not None else TagHub()
        self.resident_tags: dict[str, ResidentTag] = {}  # by resident id: only with face+tag doors
        self.uses_tags = any(e.require == "face+tag" for e in entrances)
        self.state_dir = state_dir
        self.entrances = entrances
        self.hub = hub
        # the daemon's current Doors: reload_config replaces it, and a pulse must take the same
        # per-door lock as the door_pulse command
        self.doors = doors
        self.store = store
        self.clock = clock
        self.submit = submit
        self.engine = engine
        self.catalog = models
        face_models(faces, models)  # an unknown model name fails here, before any task starts
        self.gallery_path, self.key_path = face_paths(faces, state_dir)
        self.gallery: Gallery | None = None
        self.matcher: Matcher | None = None
        self.generation = -1
        self.pipeline: FacePipeline | None = None
        self.crops = (
            EvidenceStore(state_dir / "faces-unknown", faces.unknown_retention_hours / 24, 50_000_000)
            if faces.keep_unknown_crops
            else None
        )
        self.passages: dict[str, Passage] = {}  # by resident id: filled from state.db in start()
        self.zone = local_zone(timezone)
        self.threshold = faces.max_distance  # None until the embedder is loaded
        self.flows: dict[str, EntranceFlow] = {}  # by entrance id: filled in start()
        self.errors = 0
        self.closed = False  # stopped: no pending decision is finished any more

    async def start(self) -> None:
        """Load the models on the inference thread and open the gallery (raises with the fix)."""
        self.pipeline = await self.engine.submit(
            build_pipeline, self.faces, self.engine, self.catalog, self.faces.needs_pad(self.entrances)
        )
        threshold = self.faces.max_distance or self.pipeline.embedder.threshold
        self.threshold = threshold
        self.flows = {}
        for e in self.entrances:
            check = liveness_check(self.faces.liveness_of(e), self.pipeline.pad)
            if check.name == "off":
                log.warning(
                    "entrance %s: face liveness check is off: a photograph held to the camera opens the door",
                    e.id,
                )
            factor = None
            if e.require == "face+tag":
                assert e.tag_source is not None  # the config requires it
                factor = TagCheck(
                    self.tag_hub,
                    e.tag_source,
                    e.tag_window_s,
                    self.clock.monotonic,
                    lambda: self.resident_tags,
                )
            decider = Decider(
                e, self.faces, threshold, check, self.zone, self.passages, factor, self._fused_match()
            )
            self.flows[e.id] = EntranceFlow(
                e,
                decider,
                self.engine,
                self.doors,
                self.store,
                self.clock,
                self.submit,
                self._pseudonym,
                self.crops,
            )
        self.gallery = Gallery(
            self.gallery_path, self.key_path, create=True, gate=FormatGate.at(self.state_dir)
        )
        if (beside := key_beside_gallery(self.faces, self.state_dir)) is not None:
            log.warning("%s", beside)
        self.passages.update(load_passages(self.gallery, self.store))  # the deciders hold this dict
        self._reload_gallery()

    def _pseudonym(self, resident_id: str) -> str:
        assert self.gallery is not None
        return self.gallery.pseudonym(resident_id)

    def _fused_match(self) -> Callable[[Any], Any] | None:
        """The deciders' matcher for an approach's fused descriptor (`[faces] decide_on`)."""
        if self.faces.decide_on != "approach":
            return None

        def match(vector: Any) -> Any:
            assert self.matcher is not None  # loaded before any frame is analysed
            return self.matcher.match(vector)

        return match

    def _reload_gallery(self) -> None:
        assert self.gallery is not None and self.pipeline is not None
        generation = self.gallery.generation()
        if generation == self.generation:
            return
        embedder = self.pipeline.embedder.name
        self.matcher = Matcher(self.gallery.templates(embedder))
        if self.uses_tags:  # the BLE sources listen only for the tags of a face+tag gateway
            self.resident_tags = tags(self.gallery)
            self.tag_hub.watch({t.address: t.key for t in self.resident_tags.values()})
        self.generation = generation
        log.info("face gallery loaded: %d residents (generation %d)", len(self.matcher), generation)
        stale = [rid for rid, models in self.gallery.models().items() if embedder not in models]
        if stale:  # templates of another embedder are never matched: say who must enrol again
            log.warning(
                "%d resident(s) have no %s template and cannot be recognised until enrolled again "
                "(`lintel faces list`): %s",
                len(stale), embedder, ", ".join(stale[:20]),
            )  # fmt: skip

    async def poll_gallery(self) -> None:
        while True:
            await asyncio.sleep(GALLERY_POLL_S)
            try:
                self._reload_gallery()
            except Exception:
                self.errors += 1
                log.exception("face gallery reload failed; keeping the previous one")

    def cameras(self) -> dict[str, list[FaceAccessConfig]]:
        """The entrances each camera watches (config order)."""
        out: dict[str, list[FaceAccessConfig]] = {}
        for e in self.entrances:
            out.setdefault(e.camera, []).append(e)
        return out

    async def run_camera(self, camera: str, entrances: list[FaceAccessConfig]) -> None:
        """Analyse the camera's latest frame every `interval_s` (each frame once, however many
        entrances watch it: a camera over two doors costs one analysis) and feed every entrance's
        decision rule; a resident's decision is checked and finished before the next frame."""
        needs_pad = any(
            self.flows[e.id].decider.liveness.name == "model" for e in entrances
        )  # crops only if used
        assert self.pipeline is not None
        pipeline = self.pipeline
        last_seq = -1
        loop = asyncio.get_running_loop()
        cadence = Cadence(self.faces.interval_s, loop.time())  # every interval_s, whatever the work took
        while True:
            await asyncio.sleep(cadence.wait(loop.time()))
            frame = self.hub.latest(camera)
            if frame is None or frame.seq == last_seq or not self.hub.online(camera):
                continue
            last_seq = frame.seq
            started = time.perf_counter()
            try:
                probe = await self.engine.submit(pipeline.analyse, frame.image, needs_pad)
            except Exception:
                self.errors += 1
                log.exception("camera %s: face pipeline failed", camera)
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            now_ms = self.clock.time_ms()
            match = None
            if probe.usable:
                assert self.matcher is not None and probe.vector is not None
                match = self.matcher.match(probe.vector)
            # every entrance sees the frame at once (their counters agree at any moment), then
            # each resident's pending decision is checked and finished
            flows = [self.flows[e.id] for e in entrances]
            pendings = [(f, f.observe(frame.ts_ms, probe, match, elapsed_ms, now_ms)) for f in flows]
            for flow, pending in pendings:
                if pending is not None:
                    await self.conclude(flow, pending)

    async def conclude(self, flow: EntranceFlow, pending: Pending) -> None:
        """Check a resident's pending decision on the inference thread, then finish it here. A stop
        or reload cancels the await (and `close` marks the watch closed): nothing is finished,
        nothing opens. A gallery reloaded meanwhile must still name the same resident."""
        generation = self.generation
        live = await flow.check(pending)
        if self.closed:
            return
        if self.generation != generation and not self._still_names(flow.decider, pending):
            pending.changed = True  # deleted or re-enrolled during the check
        flow.finish(pending, live, self.clock.time_ms())

    def _still_names(self, decider: Decider, pending: Pending) -> bool:
        """Whether the current gallery still gives the pending decision's face the same label."""
        if self.matcher is None or pending.vector is None:
            return False
        return decider.label(self.matcher.match(pending.vector)) == pending.label

    def delete(self, resident_id: str) -> int | None:
        """Remove a resident everywhere (gallery file, memory, anti-passback state)."""
        assert self.gallery is not None
        removed = delete_resident(self.gallery, self.store, resident_id)
        self._reload_gallery()
        self.passages.pop(resident_id, None)
        return removed

    def report(self) -> FaceAccessReport:
        """The lane's report: gallery size, threshold, and per entrance its camera and decisions."""
        now = self.clock.time_ms()
        entrances = tuple(
            entrance_report(e, self.flows.get(e.id), self.hub.online(e.camera), now) for e in self.entrances
        )
        residents = len(self.matcher) if self.matcher else 0
        return FaceAccessReport(
            residents,
            self.threshold,
            str(self.faces.liveness),
            self.errors + sum(f.errors for f in self.flows.values()),
            entrances,
        )

    def close(self) -> None:
        self.closed = True  # a decision still pending (its check on the inference thread) never grants
        if self.uses_tags:
            self.tag_hub.watch({})  # the keys leave memory; the BLE sources stop listening
            self.resident_tags = {}
        if self.gallery is not None:
            self.gallery.close()
