"""The inference engine's memory contract: a model's activations are resident only while it runs.

Every session allocates from the one process-wide arena and the engine shrinks it after each run
(gateway/inference/engine.py), so a burst of runs leaves the process no larger than it was once
the model had loaded, although each run needed megabytes of activations. Measured on this
process's own anonymous memory with the real YOLOv4-tiny int8, fed 512×512 (its warm-up at load is
416×256, so these runs need more activations than the load left behind).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from gateway.inference.catalog import find
from gateway.inference.engine import InferenceEngine
from gateway.lanes.fire_lanes.detector import Detector

MB = 1024 * 1024


def status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def measure() -> dict[str, int]:
    """Bytes a burst of runs needed (`during`) and left resident (`kept`), in this process."""
    engine = InferenceEngine(1)
    try:
        detector = Detector(engine.model(find("yolov4-tiny-coco-int8")), input_size=(512, 512))
        frame = (np.random.default_rng(7).random((512, 512, 3)) * 255).astype(np.uint8)
        loaded = status_bytes("RssAnon")  # anonymous only: library pages are not the point here
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from here
        rss = status_bytes("VmRSS")
        for _ in range(3):
            detector.detect(frame)
        during = status_bytes("VmHWM") - rss
        kept = status_bytes("RssAnon") - loaded
    finally:
        engine.close()
    return {"during": during, "kept": kept}


def test_activations_are_released_after_each_run() -> None:
    # In a process of its own: a pytest-xdist worker's earlier tests leave threads that allocate
    # while this one measures the whole process's anonymous memory (4.2 MB once in a full run).
    root = Path(__file__).resolve().parents[1]
    code = "import json; from tests.test_engine_memory import measure; print(json.dumps(measure()))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120, check=True
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    during, kept = figures["during"], figures["kept"]
    assert during > 10 * MB, f"a run needed only {during / MB:.1f} MB: no longer a test of activations"
    assert kept < 3 * MB, f"{kept / MB:.1f} MB more anonymous memory after the runs (activations kept)"
