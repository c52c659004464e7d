"""Plane geometry for lanes and boxes: point-in-polygon, IoU, the bottom strip of a box."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2


def inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of the (N, 2) points inside the (M, 2) polygon (even-odd rule)."""
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    x0, y0 = polygon[:, 0][None, :], polygon[:, 1][None, :]
    x1, y1 = np.roll(polygon[:, 0], -1)[None, :], np.roll(polygon[:, 1], -1)[None, :]
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at_x = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return np.asarray(((crosses & (x < at_x)).sum(axis=1) % 2) == 1)


def bottom_strip_inside(box: Box, polygon: np.ndarray, strip: float = 0.25, grid: int = 6) -> float:
    """Share of the bottom `strip` of a box (where the wheels meet the ground) inside the polygon.

    The ground contact, not the whole box, decides whether a vehicle stands in a lane: the body of
    a car parked beside the lane overlaps it in the picture, its wheels do not.
    """
    x1, y1, x2, y2 = box
    top = y2 - (y2 - y1) * strip
    xs = np.linspace(x1, x2, grid + 2)[1:-1]
    ys = np.linspace(top, y2, 4)[1:]
    pts = np.array([(x, y) for y in ys for x in xs], dtype=np.float64)
    return float(inside(pts, polygon).mean())


def _intersection(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def iou(a: Box, b: Box) -> float:
    inter = _intersection(a, b)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def overlap_of(a: Box, b: Box) -> float:
    """Share of box `a` covered by box `b`."""
    area = (a[2] - a[0]) * (a[3] - a[1])
    return _intersection(a, b) / area if area > 0 else 0.0


def to_pixels(polygon: Sequence[Sequence[float]], width: int, height: int) -> np.ndarray:
    return np.array([(x * width, y * height) for x, y in polygon], dtype=np.float64)


def normalise(box: Box, width: int, height: int) -> Box:
    return (box[0] / width, box[1] / height, box[2] / width, box[3] / height)
