"""Liveness (anti-spoofing) checks, consulted by the decision rule before every grant.

`model` (the default) fuses independent signals over the frames of one decision window; any one
of them refuses the grant (`ModelLiveness`, numbers in docs/face-calibration.md):
- the trained presentation-attack detector (`pad.py`, MiniFASNet): the median live probability of
  the latest 5 frames must reach `min_pad_score`. It sees the physical medium (paper, a screen);
- temporal consistency (`consistency.py`): the face must not be swapped between frames (a
  slideshow: the upper face stops correlating), the landmark geometry must change continuously,
  and no straight-edged medium (a phone, a sheet of paper) may show edges on two sides of the
  face that hold still with it from one frame to the next;
- micro-motion (below): the face must not move like a plane.

`micro_motion` looks for a face that moves like a face. A flat picture moved in
front of the camera (a printed photograph, or a still photo on a phone screen) is a plane: between
two frames, its image moves by a homography (the transform of a plane seen by a camera), whatever
the hand does. A real head is not flat: when it turns, the nose moves against the cheeks and eyes
(parallax) and the expression changes, so the motion of its texture is not a homography.

The check takes the aligned face chips of the last frames (the chip removes most of the motion
already), measures the dense optical flow (Farnebäck) between every pair of them on a grid over
the inner face (eyes to chin), fits one homography per pair by least squares, and takes the RMS
of what the homography cannot explain. The median over the pairs must reach `min_residual_px`
(on a 112-pixel chip; scaled for other chip sizes). Landmarks alone do not work for this: YuNet's
five points jitter by 1-5 % of the eye distance from frame to frame, as much as a real face moves.
Alone, it lets through a photo animated by a local warp and a slideshow of photos (issue 26: both
move non-rigidly); `model` keeps it as one of its signals.

None of the modes stops a 3-D mask, or an accomplice. A person who holds perfectly still for the
whole decision is refused once and decided again on the next frames.

`off`: every face passes; `lintel check-config` warns, and `access_granted` says
`liveness_check: "off"`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from gateway.lanes.faces.pad import PadCrops, PresentationAttackDetector

MIN_FRAMES = 5  # frames a liveness check looks at (10 pairs): 3 let a photo through ~2 % of the time


@dataclass(frozen=True, slots=True)
class LiveFrame:
    """What liveness may look at in one usable frame of the face."""

    chip: np.ndarray  # the aligned face (micro-motion)
    vector: np.ndarray | None = None  # its identity descriptor (not judged by liveness)
    landmarks: np.ndarray | None = None  # 5 × 2, picture pixels (geometry continuity)
    pad: float | None = None  # live probability of the presentation-attack detector, if known
    context: np.ndarray | None = None  # the face's surroundings (consistency.context_chip)
    pad_crops: PadCrops | None = None  # what the detector scores when `pad` is not known yet


@dataclass(frozen=True, slots=True)
class LivenessResult:
    passed: bool
    detail: str


class LivenessCheck(Protocol):
    name: str
    frames: int  # recent frames it needs (the decision waits for them)

    def check(self, frames: list[LiveFrame]) -> LivenessResult: ...


class Off:
    name = "off"
    frames = 0

    def check(self, frames: list[LiveFrame]) -> LivenessResult:
        return LivenessResult(True, "off")


def nonplanar_px(a: np.ndarray, b: np.ndarray) -> float:
    """RMS (pixels) of the optical flow from chip a to chip b that no homography explains, over
    the inner face. ~0.1-0.3 for a moved photograph, 0.5 and up for a moving face (112 px chips)."""
    import cv2

    h, w = a.shape[:2]
    ys, xs = np.mgrid[int(0.32 * h) : int(0.93 * h) : 4, int(0.25 * w) : int(0.77 * w) : 4]
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    ga = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY) if a.ndim == 3 else a
    gb = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY) if b.ndim == 3 else b
    flow = cv2.calcOpticalFlowFarneback(ga, gb, np.zeros((h, w, 2), np.float32), 0.5, 3, 11, 3, 5, 1.1, 0)
    moved = grid + flow[ys.ravel(), xs.ravel()]
    # least squares, not RANSAC: the parallax of a real face is the signal, not an outlier
    homography, _ = cv2.findHomography(grid, moved, 0)
    if homography is None:
        return 0.0
    predicted = cv2.perspectiveTransform(grid[None], homography)[0]
    return float(np.sqrt(((moved - predicted) ** 2).sum(axis=1).mean()))


def median_reaches(values: Iterable[float], count: int, threshold: float) -> tuple[bool, float]:
    """Whether the median of `count` values (np.median's) reaches `threshold`, taking values only
    until the answer is certain: once more than half of them lie on one side of the threshold,
    the rest cannot move the median across it (5 values: 3 settle it; 10: 6). Returns the answer
    and the median of the values taken (what the log shows: not always the median of all)."""
    taken: list[float] = []
    settled = count // 2 + 1
    for value in values:
        taken.append(value)
        reached = sum(v >= threshold for v in taken)
        if reached >= settled or len(taken) - reached >= settled:
            break
    median = float(np.median(taken))
    reached = sum(v >= threshold for v in taken)
    if reached >= settled:
        return True, median
    if len(taken) - reached >= settled:
        return False, median
    return median >= threshold, median  # every value taken, split at the middle: the median decides


class MicroMotion:
    name = "micro_motion"
    frames = MIN_FRAMES
    min_residual_px = 0.55  # on a 112-pixel chip (bench/face_accuracy.py: the measured gap)

    def check(self, frames: list[LiveFrame]) -> LivenessResult:
        if len(frames) < MIN_FRAMES:
            return LivenessResult(False, f"needs {MIN_FRAMES} frames or more")
        passed, value = self.judge([f.chip for f in frames])
        return LivenessResult(passed, f"non-planar motion {value:.2f} px (need ≥ {self.min_residual_px})")

    def judge(self, chips: list[np.ndarray]) -> tuple[bool, float]:
        """Whether the latest MIN_FRAMES chips move like a face: the median over their 10 pairs of
        the non-planar motion reaches `min_residual_px`, the same answer as `residual` from the
        6-10 pairs that settle it (each pair is an optical flow: the bulk of this check's cost)."""
        chips = chips[-MIN_FRAMES:]
        scale = chips[0].shape[1] / 112
        pairs = list(itertools.combinations(chips, 2))
        values = (nonplanar_px(a, b) / scale for a, b in pairs)
        return median_reaches(values, len(pairs), self.min_residual_px)

    @staticmethod
    def residual(chips: list[np.ndarray]) -> float:
        """Median over the pairs of chips of the non-planar motion (px on a 112-pixel chip)."""
        scale = chips[0].shape[1] / 112
        return float(np.median([nonplanar_px(a, b) / scale for a, b in itertools.combinations(chips, 2)]))


class ModelLiveness:
    """PAD model + temporal consistency + micro-motion over one window; any one vetoes.

    The window is the face's last 5-10 frames: swaps, geometry and the medium's frame over
    all of them; micro-motion and the detector over the latest MIN_FRAMES (what bench/pad.py
    measures). Cheapest first, and the first veto refuses: a refusal by a consistency cue costs
    ~1 ms, a grant pays for all of them. The detector runs here, on the frames it judges (their
    `pad_crops`; a frame's known `pad` is used as is). At the door the check runs on the inference
    thread as two jobs (`stages`), never on the event loop (`entrance.EntranceFlow.check`)."""

    name = "model"
    frames = MIN_FRAMES
    min_pad_score = 0.5  # the authors' own cut: live is the most likely class
    # consecutive chips of 11 real people: upper-face correlation ≥ 0.33; a slide change ≤ -0.01
    min_face_correlation = 0.15
    # landmark jitter reaches 0.17 eye distances on still photographs: only a gross jump counts
    max_geometry_jump = 0.3

    def __init__(self, pad: PresentationAttackDetector | None = None) -> None:
        self.motion = MicroMotion()
        self.pad = pad

    def _scorer(self, frame: LiveFrame) -> Callable[[], float] | None:
        if frame.pad is not None:
            known = frame.pad
            return lambda: known
        if frame.pad_crops is not None and self.pad is not None:
            crops, pad = frame.pad_crops, self.pad
            return lambda: pad.score_crops(crops)
        return None

    def check(self, frames: list[LiveFrame]) -> LivenessResult:
        """Every stage in turn (`stages`), on this thread."""
        for stage in self.stages(frames):
            if (result := stage()) is not None:
                return result
        raise AssertionError("the last stage always answers")

    def stages(self, frames: list[LiveFrame]) -> list[Callable[[], LivenessResult | None]]:
        """The check as two jobs of about half its cost each, for the inference thread to run
        one after the other with other work between them (a frame of another camera): the
        signals (consistency, micro-motion; a veto or None) then the detector (the answer)."""
        seen: dict[str, Any] = {}
        return [lambda: self._signals(frames, seen), lambda: self._detector(seen)]

    def _signals(self, frames: list[LiveFrame], seen: dict[str, Any]) -> LivenessResult | None:
        """Every signal but the detector: a veto, or None (`seen` keeps what the detector needs)."""
        from gateway.lanes.faces import consistency

        if len(frames) < MIN_FRAMES:
            return LivenessResult(False, f"needs {MIN_FRAMES} frames or more")
        frames = frames[-2 * MIN_FRAMES :]
        judged = frames[-MIN_FRAMES:]
        scorers = [self._scorer(f) for f in judged]
        if any(s is None for s in scorers):
            return LivenessResult(False, "the presentation-attack detector did not run")
        chips = [f.chip for f in frames]
        landmarks = [f.landmarks for f in frames if f.landmarks is not None]
        contexts = [f.context for f in frames if f.context is not None]
        c = consistency.measure(chips, landmarks, contexts)
        if c.face_correlation < self.min_face_correlation:
            return LivenessResult(
                False, f"face swapped: correlation {c.face_correlation:.2f} < {self.min_face_correlation}"
            )
        if c.geometry_jump > self.max_geometry_jump:
            return LivenessResult(False, f"geometry jump {c.geometry_jump:.2f} > {self.max_geometry_jump}")
        if consistency.framed(c.medium_sides):
            return LivenessResult(False, f"framed by a medium ({c.medium_sides})")
        moving, motion = self.motion.judge([f.chip for f in judged])
        if not moving:
            return LivenessResult(False, f"planar motion {motion:.2f} px < {self.motion.min_residual_px}")
        seen.update(
            scorers=scorers,
            detail=f"face correlation {c.face_correlation:.2f}, geometry jump {c.geometry_jump:.2f}, "
            f"straight edges {c.medium_sides or 'none'}, motion {motion:.2f} px",
        )
        return None

    def _detector(self, seen: dict[str, Any]) -> LivenessResult:
        """The detector's median over the judged frames (after `_signals` let them through)."""
        if "scorers" not in seen:  # a veto came first: this stage never runs after one
            raise RuntimeError("the detector stage ran before the signals passed")
        scorers = seen["scorers"]
        live, pad = median_reaches((s() for s in scorers), len(scorers), self.min_pad_score)
        if not live:
            return LivenessResult(False, f"PAD live {pad:.2f} < {self.min_pad_score}")
        return LivenessResult(True, f"PAD live {pad:.2f}, {seen['detail']}")


def liveness_check(name: str, pad: PresentationAttackDetector | None = None) -> LivenessCheck:
    """The check `[faces] liveness` names; `model` scores `pad_crops` with `pad`."""
    if name == "off":
        return Off()
    return MicroMotion() if name == "micro_motion" else ModelLiveness(pad)
