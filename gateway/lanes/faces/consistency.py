"""Temporal consistency of one approach: does the face at the door behave like one live head?

Measured over the frames of one decision window (5 frames or more, ~1 s at the default cadence),
each a cue that can veto a grant (`liveness.ModelLiveness`):

- **No swapped face.** A slideshow replaces one photograph by another while the face box stays:
  the aligned face chip's upper half (brows, eyes, nose bridge: what talking and smiling move
  least) stops correlating with the previous frame's. Its lowest correlation between consecutive
  frames must reach `min_face_correlation`. (The descriptor's jump, used before, measures nothing
  useful here: between frames 0.2 s apart a talking person's descriptor moves 0.26-0.94, a slide
  change 0.73-0.78. The upper face of 11 real people correlates ≥ 0.33 between consecutive
  frames, even 0.6 s apart; across a slide change -0.25 to -0.01: docs/face-calibration.md.)
- **Geometry continuity.** The five landmarks, put in the face's own frame (eye midpoint at the
  origin, eyes level, eye distance 1), describe pose and expression. A head turns and a mouth
  opens over several frames; a new photograph changes them at once. YuNet's landmarks jitter by
  1-5 % of the eye distance: the largest consecutive change must stay under `max_geometry_jump`.
- **A medium around the face.** A phone or a sheet of paper held to the camera has straight edges
  around the face: in the face's surroundings (`context_chip`, 4 face widths square), a straight
  edge that holds still relative to the face from one frame to the next, on two sides of it or
  more (a medium's corner, or both its sides), is the frame of what carries the face. Between
  consecutive frames, not over the whole window: a replayed video's face moves within the screen
  as the filmed person did, so its bezel stays put around the face for a step (0.2-0.6 s) but not
  for a second (a whole-window rule let 52 of 1,716 replay windows through). Two sides, not one:
  what holds still beside a real head on one side is its own hair, or a background edge beside a
  still head (a one-side rule over the window refused 45 of 644 genuine windows; two sides in a
  step refuse 13, all of one woman's long straight hair on both sides of a still head).
  docs/face-calibration.md has the counts.

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
OUTSIDE = 0  # context chip value where the square leaves the picture
EDGE_MARGIN_PX = 3  # edges this close to the picture's border are the border's, not a medium's


def context_chip(image: np.ndarray, face: Face) -> np.ndarray:
    """Greyscale surroundings of the face: CONTEXT_FACES face widths square about the box's
    centre, CONTEXT_PX pixels across. Where the square leaves the picture the chip is 0 (OUTSIDE)
    and the picture's own pixels are 1-255: `medium_sides` counts only edges inside the picture.
    (Repeating the picture's edge outward instead drew straight stripes that persist with the
    face: they framed 399 of 644 genuine windows, issue 26.) Axis-aligned on the box: YuNet's
    box jitters less than its eye landmarks."""
    x1, y1, x2, y2 = face.box
    scale = CONTEXT_PX / (CONTEXT_FACES * max(x2 - x1, 1.0))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    matrix = np.array([[scale, 0, CENTRE - scale * cx], [0, scale, CENTRE - scale * cy]], np.float32)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    inside = cv2.warpAffine(
        np.full(grey.shape[:2], 255, np.uint8),
        matrix,
        (CONTEXT_PX, CONTEXT_PX),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    chip = cv2.warpAffine(
        np.maximum(grey, 1),
        matrix,
        (CONTEXT_PX, CONTEXT_PX),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_REPLICATE,
    )
    chip[inside == 0] = OUTSIDE
    return chip


def _inside_edges(context: np.ndarray) -> np.ndarray:
    """Canny edges of a context chip, without those at or near the picture's border (OUTSIDE)."""
    edges = cv2.Canny(cv2.GaussianBlur(context, (3, 3), 0), 40, 120)
    outside = (context == OUTSIDE).astype(np.uint8)
    if outside.any():
        near = cv2.dilate(outside, np.ones((2 * EDGE_MARGIN_PX + 1,) * 2, np.uint8))
        edges[near > 0] = 0
    return edges


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
    """The largest change between consecutive landmark sets (RMS per point)."""
    steps = [float(np.sqrt(((b - a) ** 2).mean() * 2)) for a, b in itertools.pairwise(values)]
    return max(steps, default=0.0)


MIN_MEDIUM_SIDES = 2  # a corner of the medium, or two of its sides: hair or one background edge is one
# below this tilt of the eye line the chips are judged as cut: a line within 20° of vertical or
# horizontal counts as a side anyway (the genuine heads of docs/face-calibration.md roll ≤ 8.1°)
ROLL_LEVEL_DEG = 10.0


def held_sides(a: np.ndarray, b: np.ndarray) -> str:
    """The sides of the face ("L"eft, "R"ight, "T"op, "B"ottom, sorted) with a straight edge that
    holds still, in the face's frame, between two edge maps of its surroundings (`_inside_edges`
    of consecutive context chips)."""
    # two pixels of box jitter: the same edge
    persistent = cv2.bitwise_and(a, cv2.dilate(b, np.ones((5, 5), np.uint8)))
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


def roll_degrees(landmarks: list[np.ndarray]) -> float:
    """The median tilt of the eye line over a window's landmarks (degrees, picture coordinates;
    0: eyes level)."""
    angles = [math.degrees(math.atan2(p[1][1] - p[0][1], p[1][0] - p[0][0])) for p in landmarks]
    return float(np.median(angles)) if angles else 0.0


def levelled(context: np.ndarray, roll: float) -> np.ndarray:
    """A context chip turned about the face's centre by `roll` degrees (the eye line level), what
    leaves the picture OUTSIDE as in `context_chip`."""
    matrix = cv2.getRotationMatrix2D((CENTRE, CENTRE), roll, 1.0)
    size = (CONTEXT_PX, CONTEXT_PX)
    turned = cv2.warpAffine(context, matrix, size, flags=cv2.INTER_LINEAR, borderValue=OUTSIDE)
    inside = cv2.warpAffine(
        (context != OUTSIDE).astype(np.uint8), matrix, size, flags=cv2.INTER_NEAREST, borderValue=0
    )
    turned = np.maximum(turned, 1)
    turned[inside == 0] = OUTSIDE
    return turned


def medium_sides(contexts: list[np.ndarray], roll: float = 0.0) -> str:
    """The sides of the face on which straight edges held still between two consecutive context
    chips: those of the first step that shows MIN_MEDIUM_SIDES or more (the later steps cannot
    change `framed`'s answer, so they are not looked at), else of the step showing the most ("" for
    fewer than 2 chips). With the window's eye line tilted by ROLL_LEVEL_DEG or more (`roll`), the
    chips are levelled first: a phone held tilted shows a tilted face, and its edges, leaning as
    much, would be neither vertical nor horizontal (a 30° tilt let 367 of 1,716 replay windows
    through; docs/face-calibration.md)."""
    most = ""
    previous = None
    for context in contexts:
        edges = _inside_edges(levelled(context, roll) if abs(roll) >= ROLL_LEVEL_DEG else context)
        if previous is not None:
            sides = held_sides(previous, edges)
            if len(sides) >= MIN_MEDIUM_SIDES:
                return sides
            most = max(most, sides, key=len)
        previous = edges
    return most


def framed(sides: str) -> bool:
    """A medium: straight edges held still with the face, in one step, on MIN_MEDIUM_SIDES sides
    or more (`medium_sides`)."""
    return len(sides) >= MIN_MEDIUM_SIDES


def upper_face(chip: np.ndarray) -> np.ndarray:
    """The aligned chip's brows, eyes and nose bridge (rows 15-55 %, columns 15-85 %),
    standardised (mean 0, deviation 1) so that a correlation ignores exposure."""
    grey = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY) if chip.ndim == 3 else chip
    h, w = grey.shape[:2]
    part = grey[int(0.15 * h) : int(0.55 * h), int(0.15 * w) : int(0.85 * w)].astype(np.float32)
    return (part - part.mean()) / (float(part.std()) + 1e-6)


def lowest_correlation(chips: list[np.ndarray]) -> float:
    """The lowest correlation of the upper face between consecutive chips (1.0: fewer than 2)."""
    parts = [upper_face(c) for c in chips]
    return min((float((a * b).mean()) for a, b in itertools.pairwise(parts)), default=1.0)


@dataclass(frozen=True, slots=True)
class Consistency:
    face_correlation: float  # lowest upper-face correlation between consecutive chips
    geometry_jump: float  # largest landmark change (eye distances, RMS per point)
    medium_sides: str  # sides with a straight edge held still with the face in a step (`framed`)


def measure(chips: list[np.ndarray], landmarks: list[np.ndarray], contexts: list[np.ndarray]) -> Consistency:
    return Consistency(
        lowest_correlation(chips),
        largest_step([normalised_landmarks(p) for p in landmarks]),
        medium_sides(contexts, roll_degrees(landmarks)),
    )
