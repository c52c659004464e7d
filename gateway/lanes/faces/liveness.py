"""Liveness (anti-spoofing) checks, consulted by the decision rule before every grant.

`micro_motion` (the default) looks for a face that moves like a face. A flat picture moved in
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

Measured on door clips (bench/face_accuracy.py, tests/test_face_access_process.py): still
photographs and a phone screen showing one are refused, a live-motion clip is granted. It does
NOT stop a video replay of the resident's face (a replay moves like a face), nor a 3-D mask: no
licence-clean passive anti-spoofing model was found in the registries (docs/face-calibration.md),
so a door that must resist replays needs a second factor. A person who holds perfectly still for
the whole decision is refused once and decided again on the next frames.

`off`: every face passes; `lintel check-config` warns, and `access_granted` says
`liveness_check: "off"`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Protocol

import numpy as np

MIN_FRAMES = 5  # frames a liveness check looks at (10 pairs): 3 let a photo through ~2 % of the time


@dataclass(frozen=True, slots=True)
class LivenessResult:
    passed: bool
    detail: str


class LivenessCheck(Protocol):
    name: str
    frames: int  # recent frames it needs (the decision waits for them)

    def check(self, chips: list[np.ndarray]) -> LivenessResult: ...


class Off:
    name = "off"
    frames = 0

    def check(self, chips: list[np.ndarray]) -> LivenessResult:
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


class MicroMotion:
    name = "micro_motion"
    frames = MIN_FRAMES
    min_residual_px = 0.55  # on a 112-pixel chip (bench/face_accuracy.py: the measured gap)

    def check(self, chips: list[np.ndarray]) -> LivenessResult:
        if len(chips) < MIN_FRAMES:
            return LivenessResult(False, f"needs {MIN_FRAMES} frames or more")
        scale = chips[0].shape[1] / 112
        residuals = [nonplanar_px(a, b) / scale for a, b in itertools.combinations(chips, 2)]
        value = float(np.median(residuals))
        return LivenessResult(
            value >= self.min_residual_px,
            f"non-planar motion {value:.2f} px (need ≥ {self.min_residual_px})",
        )


def liveness_check(name: str) -> LivenessCheck:
    return Off() if name == "off" else MicroMotion()
