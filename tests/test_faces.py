"""Face access on real photographs from the package registries, through the real models: who is
recognised, who is not, which photos are refused and why, what the gallery file holds, and the
decision rule (k of n, margin, permissions, anti-passback, lockout, liveness) on its own clock."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from gateway.faces.access import build_pipeline
from gateway.faces.config import FaceAccessConfig, FacesSection
from gateway.faces.decision import Decider, Observation
from gateway.faces.gallery import Gallery, GalleryError, Resident, Templates
from gateway.faces.keys import GalleryKeyError, create_key
from gateway.faces.liveness import MicroMotion, Off
from gateway.faces.match import Match, Matcher
from gateway.faces.pipeline import FacePipeline
from gateway.vision.catalog import catalog
from gateway.vision.engine import InferenceEngine
from tests.support.media import photo
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
        assert m.distance > threshold + 0.1, (name, m.resident, m.distance)


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


def test_calibrate_suggests_a_threshold_between_the_distributions(tmp_path: Path) -> None:
    folder = tmp_path / "labelled"
    for person, names in {
        "obama": ["faces/obama.jpg", "faces/obama2.jpg", "faces/obama3.jpg"],
        "biden": ["faces/biden.jpg"],
        "lena": ["opencv-doc/faceDetection.png"],
        "man": ["opencv-doc/face_swapped.jpg"],
    }.items():
        (folder / person).mkdir(parents=True)
        for n in names:
            (folder / person / Path(n).name).write_bytes(photo(n).read_bytes())
    config = tmp_path / "lintel.toml"
    config.write_text(f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{tmp_path / "state"}"\n')
    out = lintel_output(
        "faces", "calibrate", "-c", str(config), str(folder), "--plot", str(tmp_path / "d.png"), "--json"
    )
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["genuine_pairs"] == 3 and body["impostor_pairs"] == 3 * 3 + 3
    assert body["genuine"]["max"] < body["suggested_max_distance"] < body["impostor"]["min"]
    assert body["frr_at_threshold"] == 0 and body["far_at_threshold"] == 0
    plot = cv2.imread(str(tmp_path / "d.png"))
    assert plot is not None and plot.shape == (400, 800, 3)


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


def test_liveness_is_consulted_before_a_grant() -> None:
    check = MicroMotion()
    rot = np.array([[np.cos(0.1), -np.sin(0.1)], [np.sin(0.1), np.cos(0.1)]], np.float32)
    photo_moved = [LANDMARKS, LANDMARKS @ rot.T * 1.1 + 5, LANDMARKS + 12]  # a photo: rigid motion only
    assert not check.check(photo_moved).passed
    face = [LANDMARKS, LANDMARKS + np.array([[0, 0], [0, 0], [4, 0], [0, 3], [0, 3]], np.float32)]
    assert check.check(face).passed
    cfg = FaceAccessConfig(id="lobby-face", camera="cam", door="lobby")
    d = Decider(cfg, FacesSection(k=3, n=5, liveness="micro_motion"), 0.5, check, dt.UTC, {})
    ((_, decision, _),) = feed(d, [(resident("r-a"), 0.3, 0.9)] * 3)  # same landmarks every frame
    assert not decision.granted and decision.reason == "liveness_failed" and decision.liveness == "failed"


def test_models_bench_times_the_face_models(tmp_path: Path) -> None:
    config = tmp_path / "lintel.toml"
    config.write_text(f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{tmp_path / "state"}"\n')
    for model in ("yunet-2023mar", "dlib-resnet29-faceapi"):
        out = lintel_output("models", "bench", "-c", str(config), "--model", model, "--runs", "3", "--json")
        assert out.returncode == 0, out.stderr
        body = json.loads(out.stdout)
        assert body["model"] == model and [r["threads"] for r in body["results"]] == [1, 2]
