"""Drawing lanes, detections and lane states on a frame (snapshots, evidence)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from gateway.lanes.fire_lanes.detector import Detection
from gateway.lanes.fire_lanes.geometry import to_pixels

STATE_COLOURS = {  # BGR
    "absent": (80, 200, 80),
    "candidate": (0, 200, 255),
    "parked": (0, 140, 255),
    "violation": (0, 0, 255),
    "unknown": (160, 160, 160),
}


def draw(
    frame: np.ndarray,
    lanes: Iterable[tuple[str, Sequence[Sequence[float]], str]],
    detections: Iterable[Detection] = (),
    caption: str | None = None,
) -> np.ndarray:
    """A copy of `frame` with each (lane id, polygon, state) outlined and labelled, and boxes."""
    out = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(w, h) / 300))
    for lane_id, polygon, state in lanes:
        colour = STATE_COLOURS.get(state, (255, 255, 255))
        pts = to_pixels(polygon, w, h).round().astype(np.int32)
        overlay = out.copy()
        cv2.fillPoly(overlay, [pts], colour)
        cv2.addWeighted(overlay, 0.18, out, 0.82, 0, out)
        cv2.polylines(out, [pts], True, colour, thick + 1)
        x, y = pts[:, 0].min(), pts[:, 1].min()
        _label(out, f"{lane_id}: {state.upper()}", (int(x), int(max(y - 6, 14))), colour, thick)
    for det in detections:
        x1, y1, x2, y2 = (round(v) for v in det.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (255, 255, 0), thick)
        _label(out, f"{det.label} {det.score:.2f}", (x1, max(y1 - 4, 12)), (255, 255, 0), thick)
    if caption:
        _label(out, caption, (6, h - 8), (255, 255, 255), thick)
    return out


def _label(
    img: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], thick: int
) -> None:
    scale = 0.45 * thick
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
