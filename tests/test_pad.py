"""Presentation-attack detection (issue 26): the converted MiniFASNet models, the crop they see,
the temporal-consistency cues and the fused `liveness = "model"` check."""

from __future__ import annotations

import hashlib
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera.door_scene import FACE_BOXES, DoorScene, Visit
from gateway.inference.catalog import catalog
from gateway.inference.engine import InferenceEngine
from gateway.lanes.faces import consistency
from gateway.lanes.faces.config import FacesSection
from gateway.lanes.faces.liveness import LiveFrame, MicroMotion, ModelLiveness, liveness_check, median_reaches
from gateway.lanes.faces.pad import widened_box
from gateway.lanes.faces.pipeline import FacePipeline, Probe, build_pipeline
from tests.support.attacks import ReplayScene, attack_clip
from tests.support.media import photo

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "data" / "pad"
PINS = {
    "image_F1.jpg": "4b11b5d7a8a8e4a88f5f16a5426a0a7692e39e5bb45bb03b4ebe5e1606336860",
    "image_F2.jpg": "fbbea73450ae9d9bb555c8ccac77bf39d234261fe3be4190e3ed2999690c485f",
    "image_T1.jpg": "f4455149f488f76205fdee5499ec5261d08ef6279a1cff7b778ea85405331e94",
}


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return build_pipeline(FacesSection(), InferenceEngine(1), catalog(), with_pad=True)


def sample(name: str) -> np.ndarray:
    data = (SAMPLES / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == PINS[name], f"{name} does not match its pin"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_the_pad_models_are_committed_pinned_and_licensed() -> None:
    models = catalog()
    for name, scale in (("minifasnet-v2-2.7", 2.7), ("minifasnet-v1se-4.0", 4.0)):
        manifest = models[name]
        assert manifest.task == "face_pad" and manifest.layout == "pad"
        assert manifest.decode["crop_scale"] == scale and manifest.decode["real_class"] == 1
        manifest.verify()  # the built file matches the manifest's sha256
        raw = tomllib.loads((ROOT / "models" / f"{name}.toml").read_text())
        committed = ROOT / "models" / raw["source"]["path"]
        assert hashlib.sha256(committed.read_bytes()).hexdigest() == raw["sha256"]
        assert (ROOT / "models" / raw["licence_file"]).read_text().lstrip().startswith("Apache License")
        assert raw["source"]["commit"] == "b6d5f04ad78778917853b25c778acef6d5626d15"


def test_the_authors_attack_samples_are_refused_and_their_live_sample_passes(pipeline: FacePipeline) -> None:
    # the only captures of a physical attack medium the project has (tests/data/pad/README.md)
    assert pipeline.pad is not None
    scores = {}
    for name in PINS:
        probe = pipeline.analyse(sample(name))
        assert probe.face is not None, name
        scores[name] = pipeline.pad.score(sample(name), probe.face)
    assert scores["image_F1.jpg"] < 0.5 and scores["image_F2.jpg"] < 0.5, scores
    assert scores["image_T1.jpg"] > 0.9, scores


def test_the_crop_widens_about_the_face_and_shifts_rather_than_cuts_at_the_edge() -> None:
    assert widened_box((480, 640, 3), (300, 200, 340, 250), 2.0) == (280, 175, 360, 275)
    # near the left edge: shifted right, same size
    x1, y1, x2, y2 = widened_box((480, 640, 3), (0, 200, 40, 250), 2.7)
    assert x1 == 0 and x2 - x1 == 108
    # a scale that cannot fit shrinks to what does
    x1, y1, x2, y2 = widened_box((100, 100, 3), (20, 20, 80, 80), 4.0)
    assert (x1, y1) == (0, 0) and x2 <= 99 and y2 <= 99


def test_landmarks_in_the_face_frame_ignore_position_size_and_tilt() -> None:
    points = np.array([[10, 10], [30, 10], [20, 20], [13, 28], [27, 28]], np.float32)
    angle = np.radians(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    moved = (points @ rot.T) * 2.5 + np.array([200, 80], np.float32)
    assert np.allclose(
        consistency.normalised_landmarks(points), consistency.normalised_landmarks(moved), atol=1e-5
    )


def test_a_medium_held_tilted_is_seen_in_the_levelled_face() -> None:
    """A phone held tilted shows a tilted face: its edges lean as much as the eye line, and a
    line leaning more than 20° is no side. Levelled by the window's eye line, they are sides."""
    centre = (consistency.CENTRE, consistency.CENTRE)
    level_eyes = np.array([[50, 56], [78, 56], [64, 70], [54, 84], [74, 84]], np.float32)
    for angle in (-35.0, -20.0, 20.0, 35.0):
        turn = cv2.getRotationMatrix2D(centre, angle, 1.0)  # the phone and its face, turned alike
        context = np.full((consistency.CONTEXT_PX, consistency.CONTEXT_PX), 128, np.uint8)
        cv2.rectangle(context, (22, 12), (106, 124), 30, 2)  # the phone's edge around the face
        context = cv2.warpAffine(context, turn, context.shape[::-1], borderValue=128)
        eyes = cv2.transform(level_eyes[None], turn)[0]
        roll = consistency.roll_degrees([eyes] * 5)
        assert abs(abs(roll) - abs(angle)) < 1, (angle, roll)
        levelled = consistency.medium_sides([context] * 5, roll)
        assert consistency.framed(levelled) and len(levelled) >= 3, (angle, levelled)
        if abs(angle) > 20:  # as cut, the edges lean past the sides' 20°
            assert not consistency.framed(consistency.medium_sides([context] * 5)), angle


def frames_of(pipeline: FacePipeline, frames: list[np.ndarray]) -> list[Probe]:
    return [pipeline.analyse(f) for f in frames]


def live_frame(p: Probe) -> LiveFrame:
    assert p.chip is not None and p.face is not None
    return LiveFrame(p.chip, p.vector, p.face.landmarks, None, p.context, p.pad_crops)


def clip_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return frames


@pytest.mark.parametrize("kind", ["animated_photo", "slideshow"])
def test_every_decision_window_of_an_attack_clip_is_refused(
    pipeline: FacePipeline, kind: str, tmp_path: Path
) -> None:
    probes = frames_of(pipeline, clip_frames(attack_clip(tmp_path / "clip.avi", kind, presentations=2)))
    check = liveness_check("model", pipeline.pad)
    refused = []
    for step in (1, 2):  # every frame, and every other one (a loaded gateway drops frames)
        for start in range(len(probes) - 4 * step):
            window = [probes[start + i * step] for i in range(5)]
            if all(p.usable for p in window):
                refused.append(check.check([live_frame(p) for p in window]))
    assert len(refused) >= 20
    assert not any(r.passed for r in refused), [r.detail for r in refused if r.passed]
    # which cue refuses: the slideshow swaps faces (a photo and its mirror copy correlate too well:
    # the bezel refuses those windows); the phone's bezel frames the animated photo
    assert all("face swapped" in r.detail or "framed by a medium" in r.detail for r in refused)
    cue = "face swapped" if kind == "slideshow" else "framed by a medium"
    assert sum(cue in r.detail for r in refused) >= 0.5 * len(refused), [r.detail for r in refused]


def test_each_signal_can_refuse_alone(pipeline: FacePipeline) -> None:
    name = "faces/obama2.jpg"
    scene = DoorScene([Visit(photo(name), FACE_BOXES[name], 0, 10, "live")], 10)
    probes = frames_of(pipeline, [scene.frame(i / 5 + 0.05) for i in range(5)])
    base = [live_frame(p) for p in probes]
    blank = np.full((consistency.CONTEXT_PX, consistency.CONTEXT_PX), 128, np.uint8)

    def window(**change: object) -> list[LiveFrame]:
        out = []
        for i, f in enumerate(base):
            fields: dict[str, object] = {
                "chip": f.chip,
                "vector": f.vector,
                "landmarks": f.landmarks,
                "pad": 0.9,
                "context": blank,
            }
            fields.update({k: (v[i] if isinstance(v, list) else v) for k, v in change.items()})
            out.append(LiveFrame(**fields))  # type: ignore[arg-type]
        return out

    check = ModelLiveness()
    passing = check.check(window())
    # the synthetic warp moves non-rigidly and its descriptors change smoothly: with a high PAD
    # score and empty surroundings it passes: the signals below are what refuse it
    assert passing.passed, passing.detail
    assert "PAD live 0.20" in check.check(window(pad=0.2)).detail
    assert not check.check(window(pad=0.2)).passed
    other = "faces/biden.jpg"  # a different photo in the middle of the window: the face is swapped
    swap = frames_of(
        pipeline, [DoorScene([Visit(photo(other), FACE_BOXES[other], 0, 1, "still")], 1).frame(0.1)]
    )
    chips = [f.chip for f in base]
    swapped = check.check(window(chip=[*chips[:2], swap[0].chip, *chips[3:]]))
    assert not swapped.passed and "face swapped" in swapped.detail
    frame = blank.copy()
    cv2.rectangle(frame, (10, 8), (118, 124), 30, 2)  # a phone's edge around the face
    framed = check.check(window(context=frame))
    assert not framed.passed and "framed by a medium" in framed.detail
    still = check.check(window(chip=base[0].chip))
    assert not still.passed and "planar motion" in still.detail
    missing = check.check(window(pad=None))
    assert not missing.passed and "did not run" in missing.detail
    assert not check.check(window()[:4]).passed  # too few frames to judge


def live_window(pipeline: FacePipeline) -> list[LiveFrame]:
    """8 frames of the warp with empty surroundings: every signal but the detector passes them
    (as in test_each_signal_can_refuse_alone), so a check's answer is the detector's."""
    name = "faces/obama2.jpg"
    scene = DoorScene([Visit(photo(name), FACE_BOXES[name], 0, 10, "live")], 10)
    blank = np.full((consistency.CONTEXT_PX, consistency.CONTEXT_PX), 128, np.uint8)
    probes = frames_of(pipeline, [scene.frame(i / 5 + 0.05) for i in range(8)])
    frames = [live_frame(p) for p in probes]
    return [LiveFrame(f.chip, f.vector, f.landmarks, None, blank, f.pad_crops) for f in frames]


def test_the_pipeline_cuts_the_detectors_crops_and_runs_it_only_when_a_decision_asks(
    pipeline: FacePipeline,
) -> None:
    name = "faces/obama2.jpg"
    frame = DoorScene([Visit(photo(name), FACE_BOXES[name], 0, 10, "live")], 10).frame(1.0)
    assert pipeline.pad is not None
    runs = [m.model.runs for m in pipeline.pad.models]
    probe = pipeline.analyse(frame)
    window = live_window(pipeline)  # 8 more frames analysed
    assert [m.model.runs for m in pipeline.pad.models] == runs  # analysing frames ran no PAD model
    assert probe.pad_crops is not None and probe.context is not None and probe.face is not None
    assert [c.shape for c in probe.pad_crops] == [(80, 80, 3), (80, 80, 3)]
    # the crops score what the frame scores
    score = pipeline.pad_score(probe)
    assert score is not None and score == pytest.approx(pipeline.pad.score(frame, probe.face), abs=1e-6)
    # a decision scores only the frames it judges: the latest 5 of the 8, and of those only the 3
    # that settle the median (this warp scores live on every frame)
    runs = [m.model.runs for m in pipeline.pad.models]
    result = ModelLiveness(pipeline.pad).check(window)
    assert result.passed, result.detail
    assert [m.model.runs - r for m, r in zip(pipeline.pad.models, runs, strict=True)] == [3, 3]
    plain = build_pipeline(FacesSection(), InferenceEngine(1), catalog())
    assert plain.pad is None and plain.analyse(frame).pad_crops is None
    # a `model` check with neither scores nor a detector to make them refuses
    refused = ModelLiveness().check(window)
    assert not refused.passed and "did not run" in refused.detail


def test_a_decisions_lazy_scores_give_the_same_answers_as_scoring_every_frame(pipeline: FacePipeline) -> None:
    # the detector's input in each frame is one of the authors' captures (two attacks, one live)
    assert pipeline.pad is not None
    crops, scores = {}, {}
    for name in PINS:
        probe = pipeline.analyse(sample(name))
        assert probe.pad_crops is not None
        crops[name], scores[name] = probe.pad_crops, pipeline.pad_score(probe)
    window = live_window(pipeline)[-5:]
    lazy_check, eager_check = ModelLiveness(pipeline.pad), ModelLiveness()
    rng = np.random.default_rng(26)
    answers = []
    for _ in range(20):
        names = [str(n) for n in rng.choice(list(PINS), 5)]
        lazy = [
            LiveFrame(f.chip, f.vector, f.landmarks, None, f.context, crops[n])
            for f, n in zip(window, names, strict=True)
        ]
        eager = [
            LiveFrame(f.chip, f.vector, f.landmarks, scores[n], f.context)
            for f, n in zip(window, names, strict=True)
        ]
        live = sum(n == "image_T1.jpg" for n in names)
        answers.append((lazy_check.check(lazy).passed, eager_check.check(eager).passed, live >= 3))
    assert {a for a, _, _ in answers} == {True, False}  # both kinds of window
    assert all(a == b == c for a, b, c in answers), answers


class Counted:
    """Values handed out one by one, counting how many were taken."""

    def __init__(self, values: np.ndarray) -> None:
        self.values, self.taken = [float(v) for v in values], 0

    def __iter__(self) -> Iterator[float]:
        for value in self.values:
            self.taken += 1
            yield value


def test_a_median_is_settled_by_the_values_that_decide_it() -> None:
    rng = np.random.default_rng(26)
    for count in (5, 10):
        for _ in range(2000):
            values = np.round(rng.uniform(0, 1, count), 1)  # ties at the threshold too
            counted = Counted(values)
            answer, _ = median_reaches(counted, count, 0.5)
            assert answer == (np.median(values) >= 0.5), values
        # a clear case needs only a majority: 3 of 5, 6 of 10
        for value, expected in ((0.9, True), (0.1, False)):
            counted = Counted(np.full(count, value))
            assert median_reaches(counted, count, 0.5) == (expected, value)
            assert counted.taken == count // 2 + 1


def test_micro_motion_judges_the_latest_frames_as_the_full_median_does(pipeline: FacePipeline) -> None:
    name = "faces/obama2.jpg"
    moving = DoorScene([Visit(photo(name), FACE_BOXES[name], 0, 10, "live")], 10)
    held = DoorScene([Visit(photo(name), FACE_BOXES[name], 0, 10, "still")], 10)
    motion = MicroMotion()
    for scene, expected in ((moving, True), (held, False)):
        chips = [p.chip for p in frames_of(pipeline, [scene.frame(i / 5 + 0.05) for i in range(7)])]
        assert all(c is not None for c in chips)
        latest = chips[-5:]
        full = MicroMotion.residual(latest)  # type: ignore[arg-type]
        passed, _ = motion.judge(chips)  # type: ignore[arg-type]
        assert passed == (full >= motion.min_residual_px) == expected, full


GENUINE = SAMPLES / "genuine"


@pytest.fixture(scope="module")
def genuine(pipeline: FacePipeline) -> dict[str, list[list[LiveFrame]]]:
    """The 5-frame windows of the first 3 s of each genuine clip of real people
    (tests/data/pad/genuine; bench/pad.py judges all of each clip), each checked against its pin."""
    out = {}
    for line in (GENUINE / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((GENUINE / name).read_bytes()).hexdigest() == digest, f"{name}: pin"
        probes = frames_of(pipeline, clip_frames(GENUINE / name)[:15])
        out[name] = [
            [live_frame(p) for p in probes[start : start + 5]]
            for start in range(len(probes) - 4)
            if all(p.usable for p in probes[start : start + 5])
        ]
    return out


def test_real_people_on_video_score_live_and_move_like_faces(
    pipeline: FacePipeline, genuine: dict[str, list[list[LiveFrame]]]
) -> None:
    assert (GENUINE / "LICENSE-MIT-LivePortrait.txt").read_text().startswith("MIT License")
    assert len(genuine) == 11 and sum(len(w) for w in genuine.values()) >= 100
    assert pipeline.pad is not None
    # the detector: every genuine window's median live probability passes its cut
    pad, motion = ModelLiveness(pipeline.pad), MicroMotion()
    windows = [w for ws in genuine.values() for w in ws]
    scored: dict[int, float] = {}  # a frame's crops are shared by the windows it is in

    def score(frame: LiveFrame) -> float:
        assert frame.pad_crops is not None and pipeline.pad is not None
        key = id(frame.pad_crops)
        if key not in scored:
            scored[key] = pipeline.pad.score_crops(frame.pad_crops)
        return scored[key]

    medians = [float(np.median([score(f) for f in w])) for w in windows]
    assert min(medians) >= pad.min_pad_score, sorted(medians)[:5]
    # micro-motion alone meets the BPCER bound (these windows: 8 of 117 refused; whole
    # clips, every 1st-3rd frame: 18 of 644 in bench/pad.py)
    refused = sum(not motion.check(w).passed for w in windows)
    assert refused <= 0.10 * len(windows), (refused, len(windows))


@pytest.mark.xfail(
    strict=True,
    reason="issue 26, open: on real video of 11 people `model` refuses 12 of the 117 consecutive "
    "windows of the first 3 s (10.3 %: planar motion of a calm head 8, d10's straight hair on both "
    "sides of a still head 4); each approach's first decision passes 10 of 11 (test below); "
    "docs/face-calibration.md",
)
def test_model_refuses_at_most_one_genuine_window_in_ten(
    pipeline: FacePipeline, genuine: dict[str, list[list[LiveFrame]]]
) -> None:
    check = liveness_check("model", pipeline.pad)
    refused = Counter(name for name, ws in genuine.items() for w in ws if not check.check(w).passed)
    windows = sum(len(w) for w in genuine.values())
    assert sum(refused.values()) <= 0.10 * windows, (sum(refused.values()), windows, refused)


def test_model_refuses_at_most_one_genuine_approach_in_ten(
    pipeline: FacePipeline, genuine: dict[str, list[list[LiveFrame]]]
) -> None:
    """Per approach, as the door decides: one decision on the approach's first 5 usable frames,
    then none for `cooldown_s` (8 s: longer than these clips), so that decision is the
    resident's. At most 1 of the 11 real people may be refused it."""
    check = liveness_check("model", pipeline.pad)
    refused = {name: r.detail for name, ws in genuine.items() if not (r := check.check(ws[0])).passed}
    assert len(refused) <= 0.10 * len(genuine), refused


@pytest.fixture(scope="module")
def replayed(
    pipeline: FacePipeline, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[list[LiveFrame]]]:
    """Each genuine clip replayed on a phone held to the camera (`ReplayScene`, as bench/pad.py's
    attack "phone, replay of a genuine video"): the 5-frame windows of its first 4 s, of every
    frame and of every other one (a loaded gateway drops frames)."""
    folder = tmp_path_factory.mktemp("replay")
    out = {}
    for line in (GENUINE / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((GENUINE / name).read_bytes()).hexdigest() == digest, f"{name}: pin"
        frames = clip_frames(GENUINE / name)
        first = pipeline.analyse(frames[0])
        assert first.face is not None, name
        h, w = frames[0].shape[:2]
        x1, y1, x2, y2 = first.face.box
        scene = ReplayScene(frames, (x1 / w, y1 / h, x2 / w, y2 / h), folder, 4.0)
        probes = frames_of(pipeline, [scene.frame(i / 5 + 0.03) for i in range(20)])
        out[name] = [
            [live_frame(probes[start + i * step]) for i in range(5)]
            for step in (1, 2)
            for start in range(len(probes) - 4 * step)
            if all(probes[start + i * step].usable for i in range(5))
        ]
    return out


def test_a_genuine_video_replayed_on_a_phone_is_refused_in_every_window(
    pipeline: FacePipeline, replayed: dict[str, list[list[LiveFrame]]]
) -> None:
    """A real person's video on a phone moves like a face, changes like a face and (composited:
    no screen texture) scores live with the detector: only the phone's frame can refuse it. The
    face moves within the screen as the person in the clip did, so the bezel does not stay put
    around the face over a whole window; it does between consecutive frames."""
    assert len(replayed) == 11
    windows = [(name, w) for name, ws in replayed.items() for w in ws]
    assert len(windows) >= 250  # most frames usable: the attack is recognised as a face
    check = liveness_check("model", pipeline.pad)
    passed: dict[str, int] = {}
    for name, window in windows:
        result = check.check(window)
        assert result.passed or "framed by a medium" in result.detail or "face swapped" in result.detail
        if result.passed:
            passed[name] = passed.get(name, 0) + 1
    assert not passed, f"replay windows judged live, per clip: {passed} of {len(windows)}"
