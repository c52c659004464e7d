"""Quality gates: is this face good enough to be compared at all?

A bad probe (tiny, blurred, turned away, half out of the picture, dark) gives a descriptor far
from everyone's, or worse, close to the wrong person's. Rejecting it costs one frame of a k-of-n
decision; accepting it risks a wrong door opening. The limits are in `[faces]`; every rejection
names the measured value and the limit, so `lintel faces enroll` can tell the installer why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from gateway.lanes.faces.detect import Face


@dataclass(frozen=True, slots=True)
class QualityLimits:
    """The gates; the configurable ones come from `[faces]` (`FacesSection.limits`), where their
    defaults are."""

    min_eye_px: float
    max_yaw: float  # nose offset from the eyes' midpoint, in inter-eye distances
    max_roll_deg: float
    min_sharpness: float  # variance of the Laplacian of the aligned grey chip
    pitch_range: tuple[float, float] = (0.25, 0.80)  # nose height between eye line and mouth line
    brightness_range: tuple[float, float] = (40.0, 225.0)  # mean grey of the chip


@dataclass(slots=True)
class Quality:
    problems: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def pose(face: Face) -> tuple[float, float, float]:
    """(yaw, pitch, roll°) from the landmarks: yaw 0 is frontal, pitch ~0.5 is level."""
    left_eye, right_eye, nose, mouth_l, mouth_r = face.landmarks.astype(np.float64)
    eye_vec = right_eye - left_eye
    eye_dist = float(np.linalg.norm(eye_vec)) or 1e-6
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    # measure in the face's own frame: x along the eye line, y perpendicular to it
    ux = eye_vec / eye_dist
    uy = np.array([-ux[1], ux[0]])
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = (mouth_l + mouth_r) / 2
    yaw = float((nose - eye_mid) @ ux) / eye_dist
    mouth_drop = float((mouth_mid - eye_mid) @ uy) or 1e-6
    pitch = float((nose - eye_mid) @ uy) / mouth_drop
    return yaw, pitch, roll


def assess(face: Face, image_shape: tuple[int, ...], limits: QualityLimits) -> Quality:
    """Check one detected face's size, position and pose (its landmarks) against the limits."""
    q = Quality()
    h, w = image_shape[:2]
    x1, y1, x2, y2 = face.box
    eye = face.eye_distance
    q.metrics["eye_px"] = round(eye, 1)
    q.metrics["score"] = round(face.score, 3)
    if eye < limits.min_eye_px:
        q.problems.append(f"face too small: eyes {eye:.0f} px apart, need ≥ {limits.min_eye_px:.0f}")
    if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        q.problems.append("face not fully in the picture")
    yaw, pitch, roll = pose(face)
    q.metrics.update(yaw=round(yaw, 2), pitch=round(pitch, 2), roll=round(roll, 1))
    if abs(yaw) > limits.max_yaw:
        q.problems.append(f"face turned sideways: yaw {yaw:+.2f}, limit ±{limits.max_yaw:.2f}")
    lo, hi = limits.pitch_range
    if not lo <= pitch <= hi:
        q.problems.append(f"face tilted up or down: pitch {pitch:.2f}, expected {lo:.2f}-{hi:.2f}")
    if abs(roll) > limits.max_roll_deg:
        q.problems.append(f"head tilted: roll {roll:+.0f}°, limit ±{limits.max_roll_deg:.0f}°")
    return q


def assess_chip(q: Quality, chip: np.ndarray, limits: QualityLimits) -> Quality:
    """Add the checks of the aligned chip (sharpness, brightness) to a face's assessment."""
    grey = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY)
    sharp = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    bright = float(grey.mean())
    q.metrics.update(sharpness=round(sharp, 1), brightness=round(bright, 1))
    if sharp < limits.min_sharpness:
        q.problems.append(f"blurred: sharpness {sharp:.0f}, need ≥ {limits.min_sharpness:.0f}")
    lo, hi = limits.brightness_range
    if not lo <= bright <= hi:
        q.problems.append(
            f"{'too dark' if bright < lo else 'too bright'}: "
            f"brightness {bright:.0f}, expected {lo:.0f}-{hi:.0f}"
        )
    return q
