"""Temporal consistency of one approach: does the face at the door behave like one live head?

Measured over the frames of one decision window (5 frames or more, ~1 s at the default cadence),
each a cue that can veto a grant (`liveness.ModelLiveness`):

- **Identity continuity.** One face changes a little from frame to frame: on the door clips the
  descriptor of one photograph, moved or warped, steps by 0.17-0.44 between consecutive frames (a
  live face: not measured, no genuine video). A slideshow swaps one photograph for another: the
  descriptor jumps by the distance between two photos of the person (0.5-0.95 on the labelled
  photographs, 0.72-0.76 in the slideshow clips), in one frame. The largest consecutive jump
  must stay under `max_identity_jump`.
- **Geometry continuity.** The five landmarks, put in the face's own frame (eye midpoint at the
  origin, eyes level, eye distance 1), describe pose and expression. A head turns and a mouth
  opens over several frames; a new photograph changes them at once. YuNet's landmarks jitter by
  1-5 % of the eye distance: the largest consecutive change must stay under `max_geometry_jump`.
- **A medium around the face.** A phone or a sheet of paper held to the camera has straight edges
  that move with the face: in the face's surroundings (`context_chip`, 4 face widths square),
  edges that persist over every frame of the window are the face's own, or those of what carries
  it. Straight persistent edges outside the head on both sides of it, or on three sides, are the
  frame of a medium. A background (a door frame) stays put while the head moves, so in the
  face's frame it moves and does not persist; a person standing perfectly still in front of a
  door frame is the known cost (refused once, decided again on the next frames; not measured on
  real people: docs/face-calibration.md).

None of these sees a 3-D mask or a replayed video without its screen's edges; the trained model
(`pad.py`) is there for the screen's and paper's texture.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from gateway.lanes.faces.detect import Face

CONTEXT_PX = 128  # side of the face's surroundings
CONTEXT_FACES = 4.0  # face widths across: a phone or a print held at door distance fits inside
CENTRE = CONTEXT_PX / 2


def context_chip(image: np.ndarray, face: Face) -> np.ndarray:
    """Greyscale surroundings of the face: CONTEXT_FACES face widths square about the box's
    centre, CONTEXT_PX pixels across; the picture's edge is repeated outward so it draws no line
    of its own. Axis-aligned on the box: YuNet's box jitters less than its eye landmarks."""
    x1, y1, x2, y2 = face.box
    scale = CONTEXT_PX / (CONTEXT_FACES * max(x2 - x1, 1.0))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    matrix = np.array([[scale, 0, CENTRE - scale * cx], [0, scale, CENTRE - scale * cy]], np.float32)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.warpAffine(
        grey, matrix, (CONTEXT_PX, CONTEXT_PX), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )


def normalised_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """The five landmarks in the face's frame: eye midpoint at 0, eyes level, eye distance 1."""
    points = landmarks.astype(np.float64)
    left, right = points[0], points[1]
    axis = right - left
    distance = max(float(np.hypot(*axis)), 1e-6)
    c, s = axis / distance
    rotation = np.array([[c, s], [-s, c]])
    return ((points - (left + right) / 2) @ rotation.T) / distance


def largest_step(values: list[np.ndarray]) -> float:
    """The largest Euclidean change between consecutive items (RMS per point for landmarks)."""
    steps = [
        float(np.sqrt(((b - a) ** 2).mean() * 2)) if a.ndim == 2 else float(np.linalg.norm(b - a))
        for a, b in itertools.pairwise(values)
    ]
    return max(steps, default=0.0)


def medium_sides(contexts: list[np.ndarray]) -> str:
    """The sides of the face ("L"eft, "R"ight, "T"op, "B"ottom, sorted) with a straight edge that
    persists, in the face's frame, over every context chip."""
    if len(contexts) < 2:
        return ""
    kernel = np.ones((5, 5), np.uint8)
    edges = [cv2.Canny(cv2.GaussianBlur(c, (3, 3), 0), 40, 120) for c in contexts]
    persistent = edges[0].copy()
    for other in edges[1:]:
        persistent = cv2.bitwise_and(
            persistent, cv2.dilate(other, kernel)
        )  # two pixels of box jitter: the same edge
    # the head itself (hair, ears, chin) is not a medium's edge: 1.5 face widths across
    cv2.ellipse(persistent, (int(CENTRE), int(CENTRE)), (24, 34), 0, 0, 360, 0, -1)
    lines = cv2.HoughLinesP(persistent, 1, np.pi / 180, 16, minLineLength=24, maxLineGap=3)
    sides: set[str] = set()  # B, L, R, T
    for x1, y1, x2, y2 in lines[:, 0] if lines is not None else []:
        angle = abs(math.degrees(math.atan2(y2 - y1, x2 - x1))) % 180
        mid_x, mid_y = (x1 + x2) / 2 - CENTRE, (y1 + y2) / 2 - CENTRE
        if abs(angle - 90) < 20:
            sides.add("L" if mid_x < 0 else "R")
        elif angle < 20 or angle > 160:
            sides.add("T" if mid_y < 0 else "B")
    return "".join(sorted(sides))


def framed(sides: str) -> bool:
    """A medium's frame: edges on both sides of the face, or on three sides. On the synthetic
    attack clips a phone's bezel shows as LRT (its bottom is often below the picture) and, in 1
    window in 10, as LR only (its top edge blurred by the warp): docs/face-calibration.md."""
    return ("L" in sides and "R" in sides) or len(sides) >= 3


@dataclass(frozen=True, slots=True)
class Consistency:
    identity_jump: float  # largest descriptor change between consecutive frames
    geometry_jump: float  # largest landmark change (eye distances, RMS per point)
    medium_sides: str  # sides with a persistent straight edge around the face (consistency.framed)


def measure(
    vectors: list[np.ndarray], landmarks: list[np.ndarray], contexts: list[np.ndarray]
) -> Consistency:
    return Consistency(
        largest_step(vectors),
        largest_step([normalised_landmarks(p) for p in landmarks]),
        medium_sides(contexts),
    )
