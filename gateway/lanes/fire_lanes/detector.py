"""Object detection on a frame: preprocessing, the model run, output decoding and NMS.

The model is described by its manifest (decoders: `gateway/lanes/fire_lanes/layouts.py`), so the same code
runs the shipped YOLOv4-tiny / YOLOv2-tiny and a user's detector in the common ONNX layouts.

Three levers change what the detector sees, measured in `bench/vision.py` and the photo tests:
- input size: a model with a free input shape (our Darknet YOLOv4 build) is fed the frame's own
  aspect ratio (`fit_input`: the manifest's longer side, the other rounded up to 32: a 640×360
  camera frame goes in as 416×256 instead of a padded 416×416, 38 % less compute and activation
  memory), or a fixed `input_size` such as 608×608;
- `roi` on `detect`: only that rectangle of the frame (the lanes' bounding region) is fed, so a
  lane's vehicles fill more of the input;
- `class_scores`: a score threshold per class over `min_score` (lower for cars than for the rest).

Boxes come back in the frame's pixel coordinates, after class-wise non-maximum suppression.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from gateway.inference.boxes import nms
from gateway.inference.catalog import Manifest, ModelError
from gateway.inference.engine import Model
from gateway.lanes.fire_lanes.layouts import decode

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a frame was fitted into the model input: input = frame · scale + (dx, dy)."""

    scale_x: float
    scale_y: float
    dx: float
    dy: float

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        out = boxes.copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.dx) / self.scale_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.dy) / self.scale_y
        return out


def preprocess(
    frame: np.ndarray, manifest: Manifest, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, Letterbox]:
    """A BGR (or grey) frame -> the model's NCHW float32 blob and the transform back to frame pixels.

    `size` (width, height) overrides the manifest's input size (for a model with a free shape)."""
    spec = manifest.input
    width, height = size or (spec.width, spec.height)
    if frame.ndim == 2 or frame.shape[2] == 1:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)  # an IR camera's single channel
    h, w = frame.shape[:2]
    if spec.resize == "letterbox":
        scale = min(width / w, height / h)
        nw, nh = round(w * scale), round(h * scale)
        dx, dy = (width - nw) // 2, (height - nh) // 2
        canvas: np.ndarray = np.full((height, width, 3), spec.pad_value, dtype=np.uint8)
        canvas[dy : dy + nh, dx : dx + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
        box = Letterbox(nw / w, nh / h, dx, dy)
    else:
        canvas = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
        box = Letterbox(width / w, height / h, 0.0, 0.0)
    if spec.colour == "rgb":
        canvas = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
    blob: np.ndarray = canvas.astype(np.float32)
    blob -= np.asarray(spec.mean, dtype=np.float32)
    blob /= np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(blob.transpose(2, 0, 1)[None]), box


def fit_input(frame_wh: tuple[int, int], manifest: Manifest) -> tuple[int, int]:
    """The frame's aspect ratio within the manifest's input box, sides rounded up to 32."""
    w, h = frame_wh
    side = max(manifest.input.width, manifest.input.height)  # the manifest's longer side
    if w >= h:
        return side, min(side, -(-round(side * h / w) // 32) * 32)
    return min(side, -(-round(side * w / h) // 32) * 32), side


class Detector:
    """Runs one detection model on frames. `detect` is blocking: call it on the engine thread.

    `min_score` applies to every class; `class_scores` raises or lowers it per class name.
    `input_size` (width, height, multiples of 32) needs a model whose ONNX input shape is free."""

    def __init__(
        self,
        model: Model,
        min_score: float = 0.25,
        nms_iou: float = 0.45,
        input_size: tuple[int, int] | None = None,
        class_scores: Mapping[str, float] | None = None,
    ) -> None:
        self.model = model
        self.manifest = model.manifest
        self.min_score = min_score
        self.nms_iou = nms_iou
        if input_size is not None and not model.free_shape:
            raise ModelError(
                f"model {self.manifest.name!r} has a fixed input of {self.manifest.input.width}×"
                f"{self.manifest.input.height}: vision.input_size cannot change it"
            )
        self.input_size = input_size
        floors = dict(class_scores or {})
        self._floors = np.asarray(
            [floors.get(name, min_score) for name in self.manifest.classes], dtype=np.float32
        )

    def detect(
        self, frame: np.ndarray, labels: frozenset[str] | None = None, roi: Rect | None = None
    ) -> list[Detection]:
        """Detections above their class's threshold (of the given labels, if any), best first.

        With `roi` only that rectangle of the frame is looked at; boxes are still in frame pixels."""
        ox, oy = 0, 0
        if roi is not None:
            x1, y1, x2, y2 = roi
            frame, ox, oy = frame[y1:y2, x1:x2], x1, y1
        size = self.input_size
        if size is None and self.model.free_shape:
            size = fit_input((frame.shape[1], frame.shape[0]), self.manifest)
        blob, fit = preprocess(frame, self.manifest, size)
        boxes, scores = decode(self.model.run(blob), self.manifest, (blob.shape[3], blob.shape[2]))
        cls = scores.argmax(axis=1)
        best = scores[np.arange(len(cls)), cls]
        keep = best >= self._floors[cls]
        if labels is not None:
            wanted = np.asarray([name in labels for name in self.manifest.classes])
            keep &= wanted[cls]
        boxes, best, cls = fit.to_frame(boxes[keep]), best[keep], cls[keep]
        h, w = frame.shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w) + ox
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h) + oy
        out: list[Detection] = []
        for c in np.unique(cls):
            idx = np.flatnonzero(cls == c)
            for i in nms(boxes[idx], best[idx], self.nms_iou):
                j = idx[i]
                bx1, by1, bx2, by2 = (float(v) for v in boxes[j])
                out.append(Detection(self.manifest.classes[int(c)], float(best[j]), (bx1, by1, bx2, by2)))
        out.sort(key=lambda d: -d.score)
        return out


def latency_ms(run: Callable[[np.ndarray], object], frame: np.ndarray, runs: int) -> tuple[float, float]:
    """(p50, p95) milliseconds of `run(frame)` (a detector's `detect`, an embedder's `embed`)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run(frame)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(runs * 0.95) - 1)]
