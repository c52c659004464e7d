"""Face recognition accuracy on the labelled registry photographs: what the defaults rest on.

1. Recognition, for SFace float32, the shipped int8 (fully-connected layer quantised, the default)
   and SFace quantised throughout (not shipped): on the labelled set of tests/data/faces.toml
   (tests/support/faces.py) — same-person and other-person pair distances, pair FAR at the default
   threshold, the threshold at pair FAR 1e-4 (chosen on one half of the named crowd, checked on the
   other) and the TAR there; the door trial (one photo enrolled per resident, every other photo a
   probe, 777 strangers at the same door, five enrolment choices) at the default threshold and
   margin; embedding time per face. int8 is kept only if TAR at FAR 1e-4 drops ≤ 1 point.
2. The "too small" gate: each probe photo shrunk until its eyes are E px apart (the whole
   photograph, so the detector sees what a far camera sees), then detected, aligned, embedded and
   compared with the full-size enrolment. For each E: share detected and passing the other gates,
   genuine accept rate at the threshold, closest impostor.
3. Liveness on door clips: still photograph, photo on a phone screen, live motion — share of
   5-frame windows that pass `micro_motion`.

    python -m bench.face_accuracy        (about 5 minutes on the 2-core dev machine)
"""

from __future__ import annotations

import dataclasses
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.common import print_table
from drivers.camera.door_scene import FACE_BOXES, DoorScene, Visit
from gateway.inference.catalog import Manifest, catalog
from gateway.inference.engine import InferenceEngine
from gateway.lanes.faces.calibration import wilson
from gateway.lanes.faces.config import FacesSection
from gateway.lanes.faces.liveness import LiveFrame, MicroMotion
from gateway.lanes.faces.pipeline import FacePipeline, build_pipeline
from tests.support import faces as face_data

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / ".cache" / "media"
PEOPLE = {  # the eye study's photos (full-size portraits; the Johns are 150-px crops)
    "obama": ["faces/obama.jpg", "faces/obama2.jpg", "faces/obama3.jpg", "faces/obama_partial_face.jpg"],
    "biden": ["faces/biden.jpg"],
    "lena": ["opencv-doc/faceDetection.png"],
    "man": ["opencv-doc/face_swapped.jpg"],
    "mona": ["opencv-doc/julia_facedetect_sample.jpg"],
}
EYES = (10, 12, 14, 16, 18, 20, 24, 28, 32, 40, 48, 64)
AUTHORS = 1.128  # SFace's authors' operating point (cosine 0.363), the default before these figures
Row = tuple[str, str, str]


def quantised_throughout(sface: Manifest) -> Manifest:
    """SFace with every weight in int8 (convolutions too), built here: not shipped, compared."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(tempfile.mkdtemp()) / "sface-int8-all.onnx"
    quantize_dynamic(str(sface.file), str(out), weight_type=QuantType.QInt8)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return dataclasses.replace(sface, name="sface-2021dec-int8-all", file=out, sha256=digest)


def rate(hits: int, n: int) -> str:
    lo, hi = wilson(hits, n)
    return f"{hits:,}/{n:,} = {hits / max(n, 1):.2e} (95 % CI {lo:.1e}–{hi:.1e})"


def recognition(label: str, pipeline: FacePipeline, items: list[face_data.Photo]) -> tuple[list[Row], dict]:
    embedded = face_data.embed(pipeline, items)
    threshold, margin = pipeline.embedder.threshold, FacesSection().min_margin
    every, tune, check = (face_data.pairs(embedded, h) for h in (None, True, False))
    at_far = face_data.threshold_at_far(tune.impostor, 1e-4)
    tar = float((every.genuine <= at_far).mean())
    trials = [face_data.door_trial(embedded, threshold, margin, choice) for choice in range(5)]
    loose = [face_data.door_trial(embedded, threshold, 0.0, choice) for choice in range(5)]
    authors = [face_data.door_trial(embedded, AUTHORS, margin, choice) for choice in range(5)]
    chips = [pipeline.analyse(face_data.image(i)).chip for i in items[:60]]
    timing = []
    for chip in (c for c in chips if c is not None):
        started = time.perf_counter()
        pipeline.embedder.embed(chip)
        timing.append((time.perf_counter() - started) * 1000)
    usable = sum(e.vector is not None for e in embedded)
    g, imp = every.genuine, every.impostor
    rows = [
        (
            f"{label} ({pipeline.embedder.name})",
            f"embedding {statistics.median(timing):.1f} ms p50 per face",
            "",
        ),
        (
            "  photos, people",
            f"{usable}/{len(items)} pass the gates; {every.people} labelled people, "
            f"{every.people_with_pairs} with 2+ photos",
            "≥ 20 people with pairs",
        ),
        ("  same-person pairs", f"{len(g)}: {g.min():.3f}–{g.max():.3f}, median {np.median(g):.3f}", ""),
        (
            "  other-person pairs",
            f"{len(imp):,}: closest {imp[0]:.3f}, 0.01 % at {np.quantile(imp, 1e-4):.3f}, "
            f"1 % at {np.quantile(imp, 0.01):.3f}",
            "",
        ),
        (f"  pair FAR at the default {threshold}", rate(int((imp <= threshold).sum()), len(imp)), ""),
        (
            "  threshold at pair FAR 1e-4",
            f"{at_far:.4f} (chosen on {len(tune.impostor):,} pairs); FAR there on the other "
            f"half {rate(int((check.impostor <= at_far).sum()), len(check.impostor))}",
            "",
        ),
        ("  TAR at pair FAR 1e-4", f"{tar:.4f} ({int((g <= at_far).sum())}/{len(g)} same-person pairs)", ""),
        (
            f"  door trial at {threshold}, margin {margin}",
            "accepted "
            + ", ".join(f"{t.accepted}/{t.probes}" for t in trials)
            + f" (5 enrolment choices; {trials[0].refused} refused by the gates); wrong person "
            + f"{sum(t.wrong for t in trials)}",
            "TAR ≥ 0.95",
        ),
        (
            "  strangers accepted",
            ", ".join(f"{t.strangers_accepted}/{t.strangers}" for t in trials)
            + f" (without the margin: {', '.join(str(t.strangers_accepted) for t in loose)})",
            "0",
        ),
        (
            f"  at the model authors' {AUTHORS} instead",
            f"pair FAR {rate(int((imp <= AUTHORS).sum()), len(imp))}; strangers accepted "
            + ", ".join(f"{t.strangers_accepted}/{t.strangers}" for t in authors)
            + f" ({'; '.join(sorted({a for t in authors for a in t.accepted_as}))})",
            "",
        ),
    ]
    return rows, {"tar": tar, "embedded": embedded}


def main() -> None:
    engine = InferenceEngine(1)
    models = catalog()
    items = face_data.photos()
    full = quantised_throughout(models["sface-2021dec"])
    models = {**models, full.name: full}
    rows: list[Row] = []
    results = {}
    for label, name in (
        ("float32", "sface-2021dec"),
        ("int8 fully-connected (default)", "sface-2021dec-int8"),
        ("int8 throughout (not shipped)", full.name),
    ):
        pipeline = build_pipeline(FacesSection(embedder=name), engine, models)
        more, results[name] = recognition(label, pipeline, items)
        rows += more
    reference = results["sface-2021dec"]
    for name in ("sface-2021dec-int8", full.name):
        drift = [
            float(np.linalg.norm(a.vector - b.vector))
            for a, b in zip(reference["embedded"], results[name]["embedded"], strict=True)
            if a.vector is not None and b.vector is not None
        ]
        drop = (reference["tar"] - results[name]["tar"]) * 100
        rows.append(
            (
                f"{name} vs float32",
                f"descriptors move {np.median(drift):.3f} median, {max(drift):.3f} max; "
                f"TAR at FAR 1e-4 drops {drop:.1f} points",
                "≤ 1 point",
            )
        )
    pipeline = build_pipeline(FacesSection(), engine, catalog())
    rows += eye_study(engine, pipeline.embedder.threshold)
    rows += liveness_rows(pipeline)
    print_table("face accuracy (bench/face_accuracy.py)", rows)


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
                passed += check.check([LiveFrame(c) for c in window]).passed
        rows.append((f"micro_motion, {label}", f"{passed}/{total} 5-frame windows pass", ""))
    return rows


if __name__ == "__main__":
    main()
