"""Liveness (anti-spoofing) checks: pluggable, off by default, EXPERIMENTAL.

No check here has been validated against real spoof data (printed photos, phone screens, masks),
so none is on by default and none should be the only safeguard. The decision logic already asks
the configured check before every grant, so a validated model can be dropped in as another
`LivenessCheck` without touching the decision rule.

`micro_motion`: a flat photograph moved in front of the camera moves its five landmarks rigidly
(a similarity transform explains them); a real face shows small non-rigid changes between frames
(expression, parallax of the nose when the head turns). It passes when the landmarks of the
agreeing frames deviate from the best rigid fit by ≥ 1.5 % of the eye distance. A video replay
of a real face passes it: it is a speed bump, not a lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gateway.faces.align import similarity


@dataclass(frozen=True, slots=True)
class LivenessResult:
    passed: bool
    detail: str


class LivenessCheck(Protocol):
    name: str
    experimental: bool

    def check(self, landmarks: list[np.ndarray]) -> LivenessResult: ...


class Off:
    name = "off"
    experimental = False

    def check(self, landmarks: list[np.ndarray]) -> LivenessResult:
        return LivenessResult(True, "off")


class MicroMotion:
    name = "micro_motion"
    experimental = True
    min_residual = 0.015

    def check(self, landmarks: list[np.ndarray]) -> LivenessResult:
        if len(landmarks) < 2:
            return LivenessResult(False, "needs two frames or more")
        ref = landmarks[0].astype(np.float64)
        eye = float(np.linalg.norm(ref[1] - ref[0])) or 1.0
        worst = 0.0
        for points in landmarks[1:]:
            m = similarity(points, ref)
            moved = points.astype(np.float64) @ m[:, :2].T + m[:, 2]
            worst = max(worst, float(np.sqrt(((moved - ref) ** 2).sum(axis=1).mean())) / eye)
        return LivenessResult(
            worst >= self.min_residual, f"non-rigid motion {worst:.3f} (need ≥ {self.min_residual})"
        )


def liveness_check(name: str) -> LivenessCheck:
    return MicroMotion() if name == "micro_motion" else Off()
