"""The face access lane at run time: cameras → inference thread → decisions → door pulses.

One asyncio task per camera takes its latest frame from the `FrameHub` every `interval_s` (a
frame is analysed once, whichever entrances watch that camera), runs the pipeline on the shared
inference thread, matches in memory and feeds the `Decider` of each entrance on that camera. A
grant pulses the door through `Doors` (Modbus coil on the bus's scheduler; never held open on
failure) without waiting for it; every decision is an `access_granted` / `access_denied` event
with ids and numbers only; the resident is named by the gallery's pseudonym
(`Gallery.pseudonym`), never by the resident id, in events, door pulses and the anti-passback
rows of `state.db`.

The gallery's `generation` is polled every second: an enrolment or a `faces delete` (CLI or
command) takes effect without a restart, and a deleted resident's templates leave memory. With a
`require = "face+tag"` entrance, the residents' tags (gallery, `tag_store.py`) are handed to the
`TagHub` at every reload so the BLE sources listen for them; the decision asks `second_factor.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from gateway.core import Clock, Event, Record
from gateway.core.clock import local_zone
from gateway.core.frames import FrameHub
from gateway.core.tags import TagHub
from gateway.inference.catalog import Manifest, pick
from gateway.inference.engine import InferenceEngine
from gateway.inference.evidence import EvidenceStore
from gateway.lanes import DoorError, DoorOpener
from gateway.lanes.faces.config import FaceAccessConfig, FacesSection
from gateway.lanes.faces.decision import Decider, Decision, Observation, Passage
from gateway.lanes.faces.detect import FaceDetector
from gateway.lanes.faces.embed import Embedder
from gateway.lanes.faces.gallery import Gallery
from gateway.lanes.faces.keys import MIGRATION, key_location
from gateway.lanes.faces.liveness import liveness_check
from gateway.lanes.faces.match import Match, Matcher
from gateway.lanes.faces.pad import PresentationAttackDetector
from gateway.lanes.faces.pipeline import FacePipeline, Probe
from gateway.lanes.faces.report import EntranceReport, FaceAccessReport
from gateway.lanes.faces.second_factor import TagCheck
from gateway.lanes.faces.tag_store import ResidentTag, tags
from gateway.releases.formats import FormatGate
from gateway.storage.state import StateStore

log = logging.getLogger("lintel.faces")

NS = "face_access"
GALLERY_POLL_S = 1.0


def delete_resident(gallery: Gallery, store: StateStore, resident_id: str) -> int | None:
    """Remove a resident from the gallery (purged) and their passages from the state database.
    Returns the templates removed, or None for an unknown resident."""
    pseudonym = gallery.pseudonym(resident_id)
    removed = gallery.delete(resident_id)
    if removed is not None:
        store.save(NS, {}, deleted=[pseudonym, resident_id])  # (rows of older versions: by id)
    return removed


def passages_by_id(gallery: Gallery, saved: dict[str, Any]) -> dict[str, Passage]:
    """Anti-passback rows of state.db (keyed by pseudonym; by resident id in older versions) as the
    deciders hold them: by resident id. Rows of residents no longer in the gallery are dropped."""
    ids = {r.id for r in gallery.residents()}
    by_pseudonym = {gallery.pseudonym(rid): rid for rid in ids}
    out: dict[str, Passage] = {}
    for key, row in saved.items():
        rid = by_pseudonym.get(key) or (key if key in ids else None)
        if rid is not None and isinstance(row, dict) and {"direction", "ts_ms"} <= row.keys():
            out[rid] = Passage(row["direction"], row["ts_ms"])
    return out


def face_paths(faces: FacesSection, state_dir: Path) -> tuple[Path, Path]:
    """(gallery database, key file): the gallery where `[faces]` says or in the state folder; the
    key from systemd credentials, `[faces] key_file` or the old default (gateway.lanes.faces.keys)."""
    gallery = Path(faces.gallery) if faces.gallery else state_dir / "faces.db"
    key, _beside = key_location(Path(faces.key_file) if faces.key_file else None, state_dir)
    return gallery, key


def key_beside_gallery(faces: FacesSection, state_dir: Path) -> str | None:
    """A warning when the gallery key lies in the state folder (beside the gallery), else None."""
    key, beside = key_location(Path(faces.key_file) if faces.key_file else None, state_dir)
    if not beside:
        return None
    return (
        f"faces.key_file: the face gallery key {key} lies in the state folder beside the gallery: whoever "
        f"copies that folder can read every template; {MIGRATION.format(old=key)}"
    )


def face_models(faces: FacesSection, models: dict[str, Manifest]) -> tuple[Manifest, Manifest]:
    """The (detector, embedder) manifests `[faces]` names; ModelError naming the known ones."""
    return pick(faces.detector, models), pick(faces.embedder, models)


def build_pipeline(
    faces: FacesSection, engine: InferenceEngine, models: dict[str, Manifest], with_pad: bool = False
) -> FacePipeline:
    """Load the models from a catalog (`catalog.configured(config.vision)`, so `model_dir` and
    `manifest_dir` apply): detector and embedder, and with `with_pad` the presentation-attack
    detector's models (`faces.pad_models`). Blocking: call on the engine thread or from the CLI."""
    det, emb = face_models(faces, models)
    pad = (
        PresentationAttackDetector([engine.model(pick(name, models)) for name in faces.pad_models])
        if with_pad
        else None
    )
    return FacePipeline(
        FaceDetector(engine.model(det), faces.min_face_score),
        Embedder(engine.model(emb)),
        faces.limits(),
        pad,
    )


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
        self.deciders: dict[str, Decider] = {}
        self.stats: dict[str, dict[str, Any]] = {
            e.id: {"frames": 0, "usable": 0, "granted": 0, "denied": 0, "pipeline_ms": 0.0, "last": None}
            for e in entrances
        }
        for s in self.stats.values():
            s["reasons"] = Counter()  # denials by reason (status: denied_reasons)
        self.errors = 0

    async def start(self) -> None:
        """Load the models on the inference thread and open the gallery (raises with the fix)."""
        self.pipeline = await self.engine.submit(
            build_pipeline, self.faces, self.engine, self.catalog, self.faces.needs_pad(self.entrances)
        )
        threshold = self.faces.max_distance or self.pipeline.embedder.threshold
        self.threshold = threshold
        self.deciders = {}
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
            self.deciders[e.id] = Decider(
                e, self.faces, threshold, check, self.zone, self.passages, factor, self._fused_match()
            )
        self.gallery = Gallery(
            self.gallery_path, self.key_path, create=True, gate=FormatGate.at(self.state_dir)
        )
        if (beside := key_beside_gallery(self.faces, self.state_dir)) is not None:
            log.warning("%s", beside)
        saved = self.store.load(NS)
        self.passages.update(passages_by_id(self.gallery, saved))  # the deciders hold this dict
        stale = [key for key in saved if not key.startswith("p-")]  # by resident id: older versions
        if stale:
            self.store.save(
                NS, {self.gallery.pseudonym(r): self._passage_row(r) for r in self.passages}, stale
            )
        self._reload_gallery()

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
        decision rule."""
        needs_pad = any(self.deciders[e.id].liveness.name == "model" for e in entrances)  # crops only if used
        assert self.pipeline is not None
        pipeline = self.pipeline
        last_seq = -1
        while True:
            await asyncio.sleep(self.faces.interval_s)
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
            for entrance in entrances:
                self._observe(entrance, frame.ts_ms, probe, match, elapsed_ms, now_ms)

    def _observe(
        self,
        entrance: FaceAccessConfig,
        ts_ms: int,
        probe: Probe,
        match: Match | None,
        elapsed_ms: float,
        now_ms: int,
    ) -> None:
        decider = self.deciders[entrance.id]
        stats = self.stats[entrance.id]
        stats["frames"] += 1
        stats["pipeline_ms"] += elapsed_ms
        if match is None:
            if probe.face is None:
                decider.no_face(now_ms)
            return
        stats["usable"] += 1
        assert probe.face is not None
        # the aligned chip always goes along: liveness needs it; a crop is saved only when
        # keep_unknown_crops is on (_decided)
        obs = Observation(
            ts_ms, match, decider.label(match), probe.face.landmarks, probe.chip, probe.vector, None,
            probe.context, probe.pad_crops,
        )  # fmt: skip
        # on the event loop, as the decision rule reads loop-owned state (tags, passages): a
        # `model` check there runs the detector on the 3-5 frames it judges (~25 ms) and the
        # optical flow (~15 ms) once per decision, not per frame (bench/pad.py)
        decision, locked = decider.observe(obs, now_ms)
        if decision is not None:
            self._decided(entrance, decision, now_ms)
        if locked:
            log.warning(
                "entrance %s: too many denied faces, locked for %.0f s", entrance.id, entrance.lockout_s
            )
            body = {
                "door": entrance.door,
                "entrance": entrance.id,
                "until_ms": decider.locked_until_ms,
                "max_attempts_per_minute": entrance.max_attempts_per_minute,
            }
            self.submit(Event(entrance.id, "access_lockout", now_ms, body))

    def _decided(self, entrance: FaceAccessConfig, decision: Decision, now_ms: int) -> None:
        stats = self.stats[entrance.id]
        body = decision.body(entrance)
        assert self.gallery is not None
        if body.get("resident_id") is not None:  # upstream and on disk: the pseudonym only
            body["resident_id"] = self.gallery.pseudonym(body["resident_id"])
        stats["last"] = {"ts_ms": now_ms, "granted": decision.granted, "reason": decision.reason}
        if decision.granted:
            stats["granted"] += 1
            self.store.save(NS, {body["resident_id"]: {"direction": entrance.direction, "ts_ms": now_ms}})
            self.submit(Event(entrance.id, "access_granted", now_ms, body))
            if self.doors().busy(entrance.door):
                log.info("entrance %s: door %s is already open", entrance.id, entrance.door)
            else:
                asyncio.get_running_loop().create_task(self._open(entrance, body["resident_id"]))
            return
        stats["denied"] += 1
        stats["reasons"][decision.reason] += 1
        if decision.liveness_detail:
            log.info("entrance %s: liveness refused a face: %s", entrance.id, decision.liveness_detail)
        if decision.chip is not None and self.crops is not None:
            ok, data = cv2.imencode(".jpg", decision.chip)
            if ok:
                body["crop_id"] = self.crops.save(entrance.id, data.tobytes(), now_ms)
        self.submit(Event(entrance.id, "access_denied", now_ms, body))

    def _passage_row(self, resident_id: str) -> dict[str, Any]:
        p = self.passages[resident_id]
        return {"direction": p.direction, "ts_ms": p.ts_ms}

    async def _open(self, entrance: FaceAccessConfig, resident_id: str) -> None:
        """`resident_id` here is the pseudonym (as in the events)."""
        try:
            await self.doors().pulse(entrance.door, via="face", entrance=entrance.id, resident_id=resident_id)
        except DoorError as exc:
            self.errors += 1
            log.error("entrance %s: door did not open for a granted face: %s", entrance.id, exc)
            body = {
                "door": entrance.door,
                "entrance": entrance.id,
                "resident_id": resident_id,
                "error": str(exc),
            }
            self.submit(Event(entrance.id, "access_door_failed", self.clock.time_ms(), body, "alarm"))

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
        entrances = []
        for e in self.entrances:
            s = self.stats[e.id]
            decider = self.deciders.get(e.id)
            last = s["last"] or {}
            entrances.append(
                EntranceReport(
                    id=e.id,
                    camera=e.camera,
                    door=e.door,
                    camera_online=self.hub.online(e.camera),
                    locked=bool(decider and decider.locked(now)),
                    frames=s["frames"],
                    granted=s["granted"],
                    denied=s["denied"],
                    pipeline_ms_avg=round(s["pipeline_ms"] / s["frames"], 1) if s["frames"] else None,
                    last_decision_ms=last.get("ts_ms"),
                    last_granted=last.get("granted"),
                    last_reason=last.get("reason"),
                    denied_reasons=dict(s["reasons"]),
                )
            )
        residents = len(self.matcher) if self.matcher else 0
        return FaceAccessReport(
            residents, self.threshold, str(self.faces.liveness), self.errors, tuple(entrances)
        )

    def close(self) -> None:
        if self.uses_tags:
            self.tag_hub.watch({})  # the keys leave memory; the BLE sources stop listening
            self.resident_tags = {}
        if self.gallery is not None:
            self.gallery.close()
