"""Presentation-attack detection, measured as ISO/IEC 30107-3 asks: APCER per attack type, BPCER on
genuine presentations, and the cost of `liveness = "model"` per decision.

1. The attack corpus (synthetic, composited from the registry photographs of the door scene; no
   physical medium's pixels in it: docs/face-calibration.md). Per attack type and photograph, a
   12 s approach at 5 fps; every 5-frame decision window (consecutive frames, and every 2nd and
   3rd frame, as a loaded gateway that drops frames sees it) is judged by each liveness check.
   APCER = windows judged live / windows, and presentations (scenes) with at least one window
   judged live / presentations (what a door that judged every window would grant). Attack types:
   - print, hand-held (moved, leaned); print on a stand (does not move); bent print (a cylinder,
     moved); phone, still photo; phone, slideshow (other photos and mirrored copies, 0.6/0.8 s);
     phone, animated photo (local warp); the same warp on a pasted cut-out with no medium around
     it (the clip the project once called "live": it stands for an injected stream).
   - phone, replay of a genuine video: each clip of 2. looped on the phone (its bezel, brighter
     bluish screen), moved as a hand does, the person moving within the screen as filmed
     (tests.support.attacks.ReplayScene); the same held tilted by 30° (every other clip -30°).
     Not in it: 3-D masks.
2. BPCER on genuine video: 11 real people filmed by phones, webcams and a studio camera
   (LivePortrait's driving videos, MIT: tests/data/pad/genuine/README.md), 5 fps, 3-6 s each,
   every 5-frame window as above judged by each check. BPCER = windows refused / windows, with
   the signal that refused (the first veto of `model`); per frame step, and the approaches (clips)
   refused at every window. (The door judges an approach once, then waits `cooldown_s`: the
   approach's first window, consecutive frames, is what a resident meets: its own row.)
   Close-up clips with exaggerated expressions: a hard genuine set, not residents walking to a
   door. The synthetic warp is an
   attack here, never a genuine presentation.
3. Cost on one inference thread: the presentation-attack detector per face (both models), a door
   frame (detection, embedding, the detector's crops, surroundings: the detector itself runs only
   when a decision asks), the `model` check once per decision (a grant, where every signal runs
   and the detector scores 3-5 frames; a refusal by the medium's frame), the decision frame (its
   own analysis + the check) and the jobs it is split into at the door (the frame's analysis, the
   check's signals, the check's detector: each its own job on the inference thread; the
   decision's rules on the event loop), and the previous design (the detector scored on every
   frame); wall p50 and this thread's CPU time (the machine may be loaded: CPU is the work).

    python -m bench.pad [--runs 60] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from drivers.camera.door_scene import FACE_BOXES, DoorScene, Visit
from gateway.inference.catalog import catalog
from gateway.inference.engine import InferenceEngine
from gateway.lanes.faces.config import FaceAccessConfig, FacesSection
from gateway.lanes.faces.decision import Decider, Observation
from gateway.lanes.faces.gallery import Resident
from gateway.lanes.faces.liveness import LiveFrame, LivenessCheck, LivenessResult, MicroMotion, ModelLiveness
from gateway.lanes.faces.match import Match
from gateway.lanes.faces.outcome import Pending
from gateway.lanes.faces.pipeline import FacePipeline, Probe, build_pipeline
from tests.support.attacks import AttackScene, ReplayScene

MEDIA = Path(__file__).resolve().parents[1] / ".cache" / "media"
GENUINE = Path(__file__).resolve().parents[1] / "tests" / "data" / "pad" / "genuine"
FPS = 5.0
SECONDS = 12.0
STEPS = (1, 2, 3)  # every frame, every 2nd, every 3rd


class Stand(DoorScene):
    """A print on a stand: no hand, so no drift at all."""

    def frame(self, t: float) -> np.ndarray:
        return super().frame(0.0 if t < self.visits[0].end_s else t)


class TiltedReplay(ReplayScene):
    """The replay with the phone held tilted by `degrees` (the picture turned about the phone's
    middle: the face on it tilts as much)."""

    degrees = 0.0

    def frame(self, t: float) -> np.ndarray:
        picture = super().frame(t)
        turn = cv2.getRotationMatrix2D((260, 190), self.degrees, 1.0)  # the phone's middle
        size = (picture.shape[1], picture.shape[0])
        return cv2.warpAffine(picture, turn, size, borderMode=cv2.BORDER_REPLICATE)


def replays(pipeline: FacePipeline, folder: Path, tilt: float = 0.0) -> list[DoorScene]:
    """Each genuine clip replayed on the phone; with `tilt`, held tilted by ±tilt degrees (every
    other clip the other way)."""
    scenes: list[DoorScene] = []
    for i, frames in enumerate(genuine_clips().values()):
        probe = pipeline.analyse(frames[0])
        assert probe.face is not None
        h, w = frames[0].shape[:2]
        x1, y1, x2, y2 = probe.face.box
        scene = TiltedReplay(frames, (x1 / w, y1 / h, x2 / w, y2 / h), folder, SECONDS, FPS)
        scene.degrees = tilt if i % 2 == 0 else -tilt
        scenes.append(scene)
    return scenes


def bent(photo: Path, folder: Path) -> Path:
    """The photograph bent about a vertical axis (a cylinder seen from the front): the middle
    comes forward, the sides recede and narrow."""
    image = cv2.imread(str(photo))
    h, w = image.shape[:2]
    xs = np.linspace(-1, 1, w, dtype=np.float32)
    source = np.sin(xs * math.pi / 3) / math.sin(math.pi / 3)  # arc length → projected position
    map_x = np.tile(((source + 1) / 2 * (w - 1)).astype(np.float32), (h, 1))
    map_y = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w))
    target = folder / f"bent-{photo.name}"
    cv2.imwrite(str(target), cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR))
    return target


def slideshow_visits(folder: Path) -> list[Visit]:
    slides = []
    for name in ("faces/obama2.jpg", "faces/obama3.jpg"):  # the resident's, not the enrolled one
        slides.append((MEDIA / name, FACE_BOXES[name]))
        image = cv2.imread(str(MEDIA / name))
        mirror = folder / f"mirror-{Path(name).name}"
        cv2.imwrite(str(mirror), image[:, ::-1])
        x1, y1, x2, y2 = FACE_BOXES[name]
        slides.append((mirror, (1 - x2, y1, 1 - x1, y2)))
    visits, t, i = [], 0.0, 0
    while t < SECONDS:
        hold = 0.6 if i % 2 else 0.8
        path, box = slides[i % len(slides)]
        visits.append(Visit(path, box, t, t + hold, "still", screen=True))
        t, i = t + hold, i + 1
    return visits


def corpus(folder: Path, pipeline: FacePipeline | None = None) -> dict[str, list[DoorScene]]:
    photos = ["faces/obama.jpg", "faces/obama2.jpg", "faces/obama3.jpg", "faces/biden.jpg"]

    def each(motion: str, screen: bool = False, cls: type[DoorScene] = DoorScene) -> list[DoorScene]:
        return [cls([Visit(MEDIA / n, FACE_BOXES[n], 0, SECONDS, motion, screen)], SECONDS) for n in photos]

    bent_scenes = [
        DoorScene([Visit(bent(MEDIA / n, folder), _bent_box(FACE_BOXES[n]), 0, SECONDS, "still")], SECONDS)
        for n in photos
    ]
    return {
        "print, hand-held": each("still"),
        "print on a stand": each("still", cls=Stand),
        "bent print, hand-held": bent_scenes,
        "phone, still photo": each("still", screen=True),
        "phone, slideshow": [DoorScene(slideshow_visits(folder), SECONDS)],
        "phone, animated photo": each("live", screen=True, cls=AttackScene),
        # the warp on a pasted cut-out, no bezel: no physical medium could show it (a print cannot
        # move); it stands for a photo animated and injected into the stream, or a borderless screen
        "animated photo, no medium (the old 'live' clip)": each("live"),
        **(
            {
                "phone, replay of a genuine video": replays(pipeline, folder),
                "phone, replay of a genuine video, held tilted ±30°": replays(pipeline, folder, 30.0),
            }
            if pipeline is not None
            else {}
        ),
    }


def _bent_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    def move(x: float) -> float:  # where a point of the flat photo lands on the bent one
        return (math.asin((2 * x - 1) * math.sin(math.pi / 3)) / (math.pi / 3) + 1) / 2

    return (move(box[0]), box[1], move(box[2]), box[3])


def live_frame(p: Probe) -> LiveFrame:
    assert p.chip is not None and p.face is not None
    return LiveFrame(p.chip, p.vector, p.face.landmarks, None, p.context, p.pad_crops)


def windows(probes: list[Probe], with_step: bool = False) -> list[Any]:
    """Every 5-frame window of usable frames (every 1st, 2nd, 3rd frame); with_step: (step, window)."""
    out: list[Any] = []
    for step in STEPS:
        for start in range(len(probes) - 4 * step):
            window = [probes[start + i * step] for i in range(5)]
            if all(p.usable for p in window):
                frames = [live_frame(p) for p in window]
                out.append((step, frames) if with_step else frames)
    return out


def apcer(pipeline: FacePipeline, checks: dict[str, LivenessCheck]) -> tuple[list[tuple[str, ...]], dict]:
    rows, figures = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for attack, scenes in corpus(Path(tmp), pipeline).items():
            judged = {name: [0, 0] for name in checks}
            granted = Counter[str]()  # presentations (scenes) with at least one window judged live
            for scene in scenes:
                probes = [pipeline.analyse(scene.frame(i / FPS + 0.03)) for i in range(int(SECONDS * FPS))]
                passed = Counter[str]()
                for window in windows(probes):
                    for name, check in checks.items():
                        passed[name] += check.check(window).passed
                        judged[name][1] += 1
                for name in checks:
                    judged[name][0] += passed[name]
                    granted[name] += passed[name] > 0
            cells = [
                f"{a}/{n} = {100 * a / n:.1f} %; {granted[name]}/{len(scenes)} granted"
                if n
                else "no usable window"
                for name, (a, n) in judged.items()
            ]
            rows.append((attack, *cells))
            figures[attack] = {
                name: {
                    "accepted": a,
                    "windows": n,
                    "presentations_granted": granted[name],
                    "presentations": len(scenes),
                }
                for name, (a, n) in judged.items()
            }
    return rows, figures


def genuine_clips() -> dict[str, list[np.ndarray]]:
    """The genuine clips, each checked against its pin first (SHA256SUMS)."""
    clips = {}
    for line in (GENUINE / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        data = (GENUINE / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise SystemExit(f"{GENUINE / name} does not match its pin in SHA256SUMS")
        cap = cv2.VideoCapture(str(GENUINE / name))
        frames = []
        while (read := cap.read())[0]:
            frames.append(read[1])
        clips[Path(name).stem] = frames
    return clips


def bpcer(pipeline: FacePipeline, checks: dict[str, LivenessCheck]) -> tuple[list[tuple[str, ...]], dict]:
    rows: list[tuple[str, ...]] = []
    figures: dict[str, Any] = {}
    total = {name: [0, 0] for name in checks}
    by_step = {name: {step: [0, 0] for step in STEPS} for name in checks}
    refused_approaches: Counter[str] = Counter()  # clips of which no window is judged live
    refused_first: Counter[str] = Counter()  # clips whose first window (consecutive frames) is refused
    why: Counter[str] = Counter()
    for clip, frames in genuine_clips().items():
        probes = [pipeline.analyse(f) for f in frames]
        judged = {name: [0, 0] for name in checks}
        for step, window in windows(probes, with_step=True):
            for name, check in checks.items():
                result = check.check(window)
                if step == 1 and judged[name][1] == 0:  # the approach's first decision
                    refused_first[name] += not result.passed
                judged[name][0] += not result.passed
                judged[name][1] += 1
                by_step[name][step][0] += not result.passed
                by_step[name][step][1] += 1
                if name == "model" and not result.passed:
                    why[result.detail.split(" ")[0] + " " + result.detail.split(" ")[1]] += 1
        for name, (refused, n) in judged.items():
            total[name][0] += refused
            total[name][1] += n
            refused_approaches[name] += refused == n
        rows.append((clip, f"{sum(p.usable for p in probes)}/{len(probes)}", *_cells(judged)))
        figures[clip] = {name: {"refused": r, "windows": n} for name, (r, n) in judged.items()}
    rows.append(("all windows", "", *_cells(total)))
    for step in STEPS:
        rows.append((f"windows of every {step}. frame", "", *_cells({n: by_step[n][step] for n in checks})))
    clips = len(figures)
    rows.append(
        ("first decision of each approach refused", "", *(f"{refused_first[n]}/{clips}" for n in checks))
    )
    rows.append(
        ("approaches refused at every window", "", *(f"{refused_approaches[n]}/{clips}" for n in checks))
    )
    figures["all"] = {name: {"refused": r, "windows": n} for name, (r, n) in total.items()}
    figures["by_step"] = {name: {str(k): v for k, v in steps.items()} for name, steps in by_step.items()}
    figures["approaches_refused"] = {
        name: {"refused": refused_approaches[name], "approaches": clips} for name in checks
    }
    figures["first_decision_refused"] = {
        name: {"refused": refused_first[name], "approaches": clips} for name in checks
    }
    figures["model_refused_by"] = dict(why)
    return rows, figures


def _cells(judged: dict[str, list[int]]) -> list[str]:
    return [f"{a}/{n} = {100 * a / n:.1f} %" if n else "no usable window" for a, n in judged.values()]


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    wall, cpu = [], []
    for i in range(runs + 3):
        started, cpu0 = time.perf_counter(), time.thread_time()
        fn()
        if i >= 3:
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - cpu0) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def cost(pipeline: FacePipeline, plain: FacePipeline, runs: int) -> list[tuple[str, str]]:
    name = "faces/obama2.jpg"
    scene = AttackScene([Visit(MEDIA / name, FACE_BOXES[name], 0, 10, "live", True)], 10)
    frame = scene.frame(1.0)
    probe = pipeline.analyse(frame)
    assert probe.face is not None and pipeline.pad is not None
    face, pad = probe.face, pipeline.pad
    refused = [live_frame(pipeline.analyse(scene.frame(i / FPS))) for i in range(5)]
    # a grant: the warp without its phone (empty surroundings) passes every signal, so every
    # signal runs, the detector on the 3 frames that settle its median (it scores the warp live)
    warp = DoorScene([Visit(MEDIA / name, FACE_BOXES[name], 0, 10, "live")], 10)
    blank = np.full_like(refused[0].context, 128)
    granted = [replace(live_frame(pipeline.analyse(warp.frame(i / FPS))), context=blank) for i in range(5)]
    check = ModelLiveness(pad)
    assert check.check(granted).passed and not check.check(refused).passed
    last = warp.frame(4 / FPS)

    def decision_frame() -> None:
        p = pipeline.analyse(last)
        check.check([*granted[:4], replace(live_frame(p), context=blank)])

    signals, detector = check.stages(granted)  # the check's two jobs on the inference thread
    assert signals() is None and detector() is not None
    decider, pending = pending_grant(granted)

    rows = []
    for label, fn in (
        ("PAD, both models, one face", lambda: pad.score(frame, face)),
        ("door frame without PAD (detect, embed)", lambda: plain.analyse(frame)),
        (
            'door frame, liveness "model" (detect, embed, PAD crops, surroundings)',
            lambda: pipeline.analyse(frame),
        ),
        (
            'liveness "model" once per decision, a grant (every signal; PAD on 3 of 5 frames)',
            lambda: check.check(granted),
        ),
        ('liveness "model" once per decision, refused (framed by a phone)', lambda: check.check(refused)),
        ('decision frame, "model": its analysis + the check (a grant)', decision_frame),
        ("  job 1 on the inference thread: the frame's analysis", lambda: pipeline.analyse(last)),
        ("  job 2: the check's signals (consistency, micro-motion)", signals),
        ("  job 3: the check's detector (3 of 5 frames)", detector),
        (
            "  on the event loop: the decision's rules (tag, door, hours, passback)",
            lambda: decider.finish(pending, LivenessResult(True, "live"), 1000),
        ),
        ('liveness "micro_motion", once per decision', lambda: MicroMotion().check(granted)),
        (
            "previous design: door frame with PAD scored on every frame",
            lambda: pad.score(frame, face) if plain.analyse(frame).usable else None,
        ),
    ):
        wall, cpu = timed(fn, runs)
        digits = 1 if cpu >= 1 else 3  # the event loop's half: hundredths of a millisecond
        rows.append((label, f"{wall:.{digits}f} ms p50 wall, {cpu:.{digits}f} ms CPU"))
    return rows


def pending_grant(frames: list[LiveFrame]) -> tuple[Decider, Pending]:
    """A decision rule holding a resident's pending decision over `frames` (what the event loop
    finishes once the check answered)."""
    entrance = FaceAccessConfig(id="door", camera="cam", door="door")
    resident = Resident("r-1", "unit", "resident", "form", 0)
    decider = Decider(entrance, FacesSection(decide_on="frame"), 1.0, ModelLiveness(), dt.UTC, {})
    for i, f in enumerate(frames):
        assert f.landmarks is not None
        seen = Observation(i * 200, Match(resident, 0.3, 0.9), "r-1", f.landmarks, f.chip)
        got, _ = decider.step(seen, i * 200)
    assert isinstance(got, Pending)
    return decider, got


def show(title: str, columns: list[str], rows: list[tuple[str, ...]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cost-only", action="store_true", help="only the cost (3.), not the corpus")
    args = parser.parse_args()
    engine = InferenceEngine(1)
    models = catalog()
    pipeline = build_pipeline(FacesSection(), engine, models, with_pad=True)
    plain = build_pipeline(FacesSection(), engine, models)
    checks: dict[str, LivenessCheck] = {"model": ModelLiveness(pipeline.pad), "micro_motion": MicroMotion()}
    rows, figures = ([], {}) if args.cost_only else apcer(pipeline, checks)
    genuine, bpcer_figures = ([], {}) if args.cost_only else bpcer(pipeline, checks)
    costs = cost(pipeline, plain, args.runs)
    if args.json:
        print(json.dumps({"apcer": figures, "bpcer": bpcer_figures, "cost": dict(costs)}))
        return 0
    if rows:
        show(
            "APCER per attack type (5-frame decision windows judged live; synthetic corpus)",
            ["attack type", *(f'liveness "{n}"' for n in checks)],
            rows,
        )
    if genuine:
        show(
            "BPCER on genuine video (5-frame windows refused; 11 real people, tests/data/pad/genuine)",
            ["clip", "usable frames", *(f'liveness "{n}"' for n in checks)],
            genuine,
        )
        why = ", ".join(f"{k} {v}" for k, v in sorted(bpcer_figures["model_refused_by"].items()))
        print(f'genuine windows refused by "model", by its first veto: {why}\n')
    show("Cost on one inference thread", ["what", "p50"], costs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
