"""A resident's face decision in two halves (issue 26): the liveness check runs as its own job on
the inference thread, the event loop finishes the decision with its result. Nothing grants if the
face changed or left in between, if the gallery no longer names the resident, or if the lane was
stopped or reloaded during the check (fail safe: the door stays shut)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from drivers.camera.door_scene import FACE_BOXES, DoorScene, Visit
from gateway.core.cadence import Cadence
from gateway.core.clock import ManualClock
from gateway.core.frames import Frame, FrameHub
from gateway.inference.catalog import catalog
from gateway.inference.engine import InferenceEngine
from gateway.lanes.faces.access import FaceAccessWatch
from gateway.lanes.faces.config import FaceAccessConfig, FacesSection
from gateway.lanes.faces.decision import Decider, Observation
from gateway.lanes.faces.detect import Face
from gateway.lanes.faces.entrance import EntranceFlow
from gateway.lanes.faces.gallery import Gallery, Resident
from gateway.lanes.faces.liveness import LiveFrame, LivenessResult, Off
from gateway.lanes.faces.match import Match
from gateway.lanes.faces.outcome import Pending
from gateway.lanes.faces.pipeline import Probe, build_pipeline
from gateway.storage.state import StateStore
from tests.support.media import photo

LANDMARKS = np.array([[100, 100], [160, 100], [130, 135], [105, 165], [155, 165]], np.float32)
CHIP = np.zeros((112, 112, 3), np.uint8)


def resident(rid: str) -> Resident:
    return Resident(rid, "unit-1", "resident", "signed form", 0)


class Always:
    """A liveness check that needs 5 frames and answers `passed` (the rule's own test double)."""

    name, frames = "model", 5

    def __init__(self, passed: bool = True) -> None:
        self.passed = passed
        self.calls = 0

    def check(self, frames: list[LiveFrame]) -> LivenessResult:
        self.calls += 1
        return LivenessResult(self.passed, "test")


def decider(check: Any, max_attempts: int = 5) -> Decider:
    entrance = FaceAccessConfig(
        id="lobby-face", camera="cam", door="lobby", max_attempts_per_minute=max_attempts
    )
    return Decider(entrance, FacesSection(k=3, n=5, decide_on="frame"), 0.5, check, dt.UTC, {})


def seen(ts_ms: int, who: Resident | None, vector: np.ndarray) -> Observation:
    match = Match(who, 0.3 if who else 0.9, 0.9)
    return Observation(ts_ms, match, who.id if who else "", LANDMARKS, CHIP, vector)


def until_pending(d: Decider, who: Resident, vector: np.ndarray) -> Pending:
    for i in range(5):
        got, _ = d.step(seen(i * 200, who, vector), i * 200)
        if got is not None:
            assert isinstance(got, Pending), got
            return got
    raise AssertionError("no decision after 5 frames")


ALICE_V, BOB_V = np.eye(128, dtype=np.float32)[0], np.eye(128, dtype=np.float32)[1]  # 1.41 apart


def test_a_residents_decision_waits_for_its_check_and_is_finished_with_its_result() -> None:
    alice = resident("r-alice")
    check = Always()
    d = decider(check)
    pending = until_pending(d, alice, ALICE_V)
    assert check.calls == 0  # the first half does not run the check
    assert len(pending.frames) == 5 and pending.label == "r-alice"
    d.step(seen(1000, alice, ALICE_V), 1000)  # her next frame meanwhile: the same face
    decision, _ = d.finish(pending, pending.check(), 1100)
    assert decision.granted and decision.reason == "match" and decision.latency_ms == 1100
    assert d.passages["r-alice"].ts_ms == 1100
    d2 = decider(Always(False))  # `observe`: both halves at once (tests, benches, the CLI)
    got = [d2.observe(seen(i * 200, alice, ALICE_V), i * 200)[0] for i in range(5)]
    assert got[-1] is not None and not got[-1].granted and got[-1].reason == "liveness_failed"


def test_another_face_during_the_check_refuses_the_grant_without_counting_a_denial() -> None:
    alice, bob = resident("r-alice"), resident("r-bob")
    d = decider(Always())
    pending = until_pending(d, alice, ALICE_V)
    d.step(seen(1000, bob, BOB_V), 1000)  # Bob steps in front while Alice's check runs
    decision, locked = d.finish(pending, LivenessResult(True, "live"), 1100)
    assert not decision.granted and decision.reason == "face_changed"
    assert not locked and not d.denials and "r-alice" not in d.passages  # not an attempt: no lockout
    # nor a cooldown: when she is alone in front of the camera again, she is decided again
    again = [d.observe(seen(2000 + i * 200, alice, ALICE_V), 2000 + i * 200)[0] for i in range(5)]
    assert [x.granted for x in again if x is not None] == [True]


def test_a_face_that_leaves_during_the_check_is_not_granted() -> None:
    alice = resident("r-alice")
    d = decider(Always())
    pending = until_pending(d, alice, ALICE_V)
    d.no_face(3800)  # nobody in front of the camera for 3 s (> RESET_S)
    decision, _ = d.finish(pending, LivenessResult(True, "live"), 3900)
    assert not decision.granted and decision.reason == "face_changed"


# -- the running lane: the check on the inference thread, a stop or reload in the middle ----------


class SceneCamera:
    """A FrameSource: each call gives the next frame of a door scene, 0.2 s of scene time later."""

    def __init__(self, scene: DoorScene, clock: ManualClock) -> None:
        self.scene, self.clock, self.seq = scene, clock, 0
        self.online = True

    def latest_frame(self) -> Frame | None:
        self.seq += 1
        self.clock.advance(0.2)
        return Frame(self.scene.frame(0.05 + self.seq * 0.2), self.clock.time_ms(), self.seq)


class Doors:
    """The lane's DoorOpener: records the pulses it was asked for."""

    def __init__(self) -> None:
        self.pulses: list[dict[str, Any]] = []

    def __contains__(self, door_id: str) -> bool:
        return True

    def busy(self, door_id: str) -> bool:
        return False

    async def pulse(self, door_id: str, pulse_s: float | None = None, **attrs: Any) -> dict[str, Any]:
        self.pulses.append({"door": door_id, **attrs})
        return {}


class Gate:
    """Wraps the entrance's real check: on the inference thread it says it started, then waits to
    be released, then runs the real check."""

    def __init__(self, check: Any) -> None:
        self.inner, self.name, self.frames = check, check.name, check.frames
        self.started, self.release = threading.Event(), threading.Event()

    def check(self, frames: list[LiveFrame]) -> LivenessResult:
        assert threading.current_thread() is not threading.main_thread()  # never on the event loop
        self.started.set()
        assert self.release.wait(60)
        return self.inner.check(frames)


@pytest.fixture(scope="module")
def engine() -> InferenceEngine:
    return InferenceEngine(1)


async def lane(tmp_path: Path, engine: InferenceEngine) -> tuple[FaceAccessWatch, Doors, list[Any], Gate]:
    faces = FacesSection(
        gallery=str(tmp_path / "faces.db"), key_file=str(tmp_path / "faces.key"), liveness="micro_motion",
        interval_s=0.05, k=3, n=5,
    )  # fmt: skip
    pipeline = build_pipeline(faces, engine, catalog())
    image = cv2.imread(str(photo("faces/obama.jpg")))
    assert image is not None
    probe = pipeline.analyse(image)
    assert probe.vector is not None
    gallery = Gallery(tmp_path / "faces.db", tmp_path / "faces.key", create=True)
    gallery.enroll(resident("r-obama"), [probe.vector], pipeline.embedder.name, [{}], 0)
    gallery.close()
    clock, hub, doors = ManualClock(), FrameHub(), Doors()
    events: list[Any] = []
    name = "faces/obama2.jpg"  # the enrolment photo's owner, another photo, moving like a face
    hub.attach(
        "cam", SceneCamera(DoorScene([Visit(photo(name), FACE_BOXES[name], 0, 60, "live")], 60), clock)
    )
    entrance = FaceAccessConfig(id="lobby-face", camera="cam", door="lobby")
    store = StateStore(tmp_path / "state.db")
    watch = FaceAccessWatch(
        faces, [entrance], hub, lambda: doors, store, clock, record(events),
        tmp_path, engine, catalog(),
    )  # fmt: skip
    await watch.start()
    gate = Gate(watch.flows["lobby-face"].decider.liveness)
    watch.flows["lobby-face"].decider.liveness = gate
    return watch, doors, events, gate


def record(events: list[Any]) -> Any:
    def submit(r: Any) -> bool:
        events.append(r)
        return True

    return submit


async def wait_for(condition: Any, timeout_s: float = 120) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def run_until_check(watch: FaceAccessWatch, gate: Gate) -> asyncio.Task[None]:
    task = asyncio.create_task(watch.run_camera("cam", watch.entrances))
    await wait_for(gate.started.is_set)
    return task


async def drain(engine: InferenceEngine) -> None:
    await engine.submit(lambda: None)  # every job queued before (the check) has run


@pytest.mark.parametrize("how", ["left_alone", "stop", "close_only", "resident_deleted"])
def test_a_stop_reload_or_deletion_during_the_check_never_opens_the_door(
    tmp_path: Path, engine: InferenceEngine, how: str
) -> None:
    asyncio.run(during_the_check(tmp_path, engine, how))


async def during_the_check(tmp_path: Path, engine: InferenceEngine, how: str) -> None:
    watch, doors, events, gate = await lane(tmp_path, engine)
    task = await run_until_check(watch, gate)
    if how == "stop":  # Lanes.stop and a reload's replace: cancel the task, then stop the component
        task.cancel()
        watch.close()
    elif how == "close_only":  # the component stopped before its task saw the cancel
        watch.close()
    elif how == "resident_deleted":  # `faces delete` while her check runs
        assert watch.delete("r-obama") == 1
    gate.release.set()
    await drain(engine)
    if how == "left_alone":  # the control: the same approach, left alone, opens the door
        await wait_for(lambda: doors.pulses)
        assert doors.pulses[0]["door"] == "lobby" and doors.pulses[0]["via"] == "face"
        assert [e.kind for e in events] == ["access_granted"]
    else:
        for _ in range(20):  # every chance to finish the decision it must not finish
            await asyncio.sleep(0)
        assert doors.pulses == []
        assert "access_granted" not in [e.kind for e in events]
    if how == "resident_deleted":
        assert [(e.kind, e.attrs["reason"]) for e in events] == [("access_denied", "face_changed")]
    if how in ("stop", "close_only"):
        assert events == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    watch.close()


# -- the camera's cadence and the rule's clock ---------------------------------------------------


def test_the_camera_is_analysed_on_a_fixed_cadence_whatever_the_work_takes() -> None:
    cadence, now, ticks = Cadence(0.2, 0.0), 0.0, []
    for work_s in [0.05] * 10 + [0.5] + [0.05] * 5:  # a frame's analysis; once a slow one
        now += cadence.wait(now)
        ticks.append(round(now, 3))
        now += work_s
    assert ticks[:10] == [round(0.2 * (i + 1), 3) for i in range(10)]  # 5 a second, not 4
    # after the slow frame the next starts at once, then the cadence goes on: no burst to catch up
    assert ticks[10:13] == [2.2, 2.7, 2.9]


def test_a_frame_without_a_face_is_judged_by_its_capture_time_not_its_late_analysis(tmp_path: Path) -> None:
    alice = resident("r-alice")
    d = Decider(
        FaceAccessConfig(id="e", camera="cam", door="lobby"), FacesSection(k=3, n=5), 0.5, Off(), dt.UTC, {}
    )
    flow = EntranceFlow(
        d.entrance, d, InferenceEngine(1), Doors, StateStore(tmp_path / "state.db"), ManualClock(),
        record([]), lambda rid: rid,
    )  # fmt: skip
    face = Probe(Face((0, 0, 100, 100), 0.9, LANDMARKS), 1, None, ALICE_V, CHIP)
    nobody = Probe(None, 0, None, None, None)
    lag = 2500  # a loaded gateway analyses each frame 2.5 s after it was captured
    got = [
        flow.observe(ts, probe, Match(alice, 0.3, 0.9) if probe.face else None, 50.0, ts + lag)
        for ts, probe in ((0, face), (200, face), (400, nobody), (600, face))
    ]
    # 200 ms without a face, not 2.7 s: the window holds, her third frame decides
    assert got[:3] == [None, None, None] and isinstance(got[3], Pending)


class Staged:
    """A check in stages (as `ModelLiveness.stages`) that records where each stage ran."""

    name, frames = "model", 0

    def __init__(self, first: LivenessResult | None, raises: bool = False) -> None:
        self.first, self.raises = first, raises
        self.ran: list[str] = []

    def stages(self, frames: list[LiveFrame]) -> list[Any]:
        def stage(answer: LivenessResult | None) -> Any:
            def run() -> LivenessResult | None:
                self.ran.append(threading.current_thread().name)
                if self.raises:
                    raise RuntimeError("a model failed")
                return answer

            return run

        return [stage(self.first), stage(LivenessResult(True, "detector"))]

    def check(self, frames: list[LiveFrame]) -> LivenessResult:
        raise AssertionError("the lane runs the stages, not the whole check")


@pytest.mark.parametrize(
    ("first", "raises", "ran", "passed"),
    [(None, False, 2, True), (LivenessResult(False, "veto"), False, 1, False), (None, True, 1, False)],
)
def test_each_stage_of_the_check_is_its_own_job_on_the_inference_thread_and_a_failure_refuses(
    tmp_path: Path,
    engine: InferenceEngine,
    first: LivenessResult | None,
    raises: bool,
    ran: int,
    passed: bool,
) -> None:
    staged = Staged(first, raises)
    d = decider(staged)
    flow = EntranceFlow(
        d.entrance,
        d,
        engine,
        Doors,
        StateStore(tmp_path / "state.db"),
        ManualClock(),
        record([]),
        lambda r: r,
    )
    pending = until_pending(d, resident("r-alice"), ALICE_V)
    result = asyncio.run(flow.check(pending))
    assert result.passed is passed
    assert len(staged.ran) == ran and all(name.startswith("lintel-infer") for name in staged.ran)
