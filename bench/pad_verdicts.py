"""Every verdict of the liveness checks on bench/pad.py's corpus, to compare two versions of them.

A change meant to make a check cheaper must not change what it answers. This judges every 5-frame
window of the attack corpus and of the genuine clips (`bench.pad.corpus`, `genuine_clips`,
`windows`: the windows bench/pad.py counts) with `model` and `micro_motion`, and scores every
usable frame with the presentation-attack detector; it writes them as JSON, and with `--against`
lists every window whose verdict or logged measurement differs from an earlier run's, and the
largest difference between the detector's scores.

    python -m bench.pad_verdicts --out before.json         # on the old version
    python -m bench.pad_verdicts --against before.json     # on the new one
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.pad import FPS, SECONDS, corpus, genuine_clips, windows
from gateway.inference.catalog import catalog
from gateway.inference.engine import InferenceEngine
from gateway.lanes.faces.config import FacesSection
from gateway.lanes.faces.liveness import LivenessCheck, MicroMotion, ModelLiveness
from gateway.lanes.faces.pipeline import FacePipeline, Probe, build_pipeline


def scenes(pipeline: FacePipeline) -> dict[str, list[list[Probe]]]:
    """Every frame of every presentation, analysed once: attack type (or "genuine") → scenes."""
    out: dict[str, list[list[Probe]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for attack, shown in corpus(Path(tmp), pipeline).items():
            frames = int(SECONDS * FPS)
            out[attack] = [[pipeline.analyse(s.frame(i / FPS + 0.03)) for i in range(frames)] for s in shown]
    out["genuine"] = [[pipeline.analyse(f) for f in clip] for clip in genuine_clips().values()]
    return out


def verdicts(pipeline: FacePipeline) -> dict[str, Any]:
    assert pipeline.pad is not None
    checks: dict[str, LivenessCheck] = {"model": ModelLiveness(pipeline.pad), "micro_motion": MicroMotion()}
    judged: dict[str, list[Any]] = {}
    scores: dict[str, float] = {}
    cpu = dict.fromkeys(checks, 0.0)
    for kind, shown in scenes(pipeline).items():
        for s, probes in enumerate(shown):
            for w, window in enumerate(windows(probes)):
                for name, check in checks.items():
                    started = time.thread_time()
                    result = check.check(window)
                    cpu[name] += time.thread_time() - started
                    judged[f"{kind}|{s}|{w}|{name}"] = [result.passed, result.detail]
            for f, probe in enumerate(probes):
                if probe.pad_crops is not None:
                    scores[f"{kind}|{s}|{f}"] = pipeline.pad.score_crops(probe.pad_crops)
    return {"verdicts": judged, "pad_scores": scores, "check_cpu_s": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the verdicts here (JSON)")
    parser.add_argument("--against", type=Path, help="an earlier run's JSON: list what differs")
    args = parser.parse_args()
    pipeline = build_pipeline(FacesSection(), InferenceEngine(1), catalog(), with_pad=True)
    now = verdicts(pipeline)
    if args.out:
        args.out.write_text(json.dumps(now))
    windows_judged = len(now["verdicts"])
    cpu = ", ".join(f"{k} {v:.1f} s" for k, v in now["check_cpu_s"].items())
    print(f"{windows_judged} verdicts, {len(now['pad_scores'])} detector scores; CPU of the checks: {cpu}")
    if args.against:
        old = json.loads(args.against.read_text())
        differ = [k for k, v in now["verdicts"].items() if old["verdicts"].get(k) != v]
        missing = len(old["verdicts"].keys() - now["verdicts"].keys())
        keys = old["pad_scores"].keys() & now["pad_scores"].keys()
        worst = max((abs(old["pad_scores"][k] - now["pad_scores"][k]) for k in keys), default=0.0)
        print(
            f"differing verdicts: {len(differ)} of {windows_judged} ({missing} of the earlier run's missing)"
        )
        for key in differ[:20]:
            print(f"  {key}: {old['verdicts'].get(key)} -> {now['verdicts'][key]}")
        print(f"detector scores: largest difference {worst:.2e} over {len(keys)} frames")
        return 1 if differ or missing else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
