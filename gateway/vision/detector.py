"""Object detection on a frame: preprocessing, the model run, output decoding and NMS.

The model is described by its manifest, so the same code runs the shipped YOLOv2-tiny and a
user's detector in the common ONNX layouts:

- `yolo_region` — Darknet YOLOv2: 1×(A·(5+C))×H×W raw map; sigmoid xy/objectness, exp(wh)·anchor
  (in grid cells), softmax classes; score = objectness · class probability.
- `yolov5` — 1×N×(5+C): cx, cy, w, h in input pixels, objectness, class scores (already sigmoid).
- `yolov8` — 1×(4+C)×N (YOLOv8/11-style): cx, cy, w, h in input pixels, class scores; no objectness.
- `yolox` — 1×N×(5+C) as YOLOX exports it without decoding: per stride (8, 16, 32) grid,
  cx = (raw + col)·stride, w = exp(raw)·stride; objectness and classes already sigmoid. With
  `decoded = true` in the manifest the boxes are taken as they are (yolov5 layout).
- `nanodet` — 1×N×(C + 4·(reg_max+1)): class scores (sigmoid), then a distribution of 4 side
  distances over `reg_max+1` bins (softmax, expectation, × stride), centres at
  (col + `center_offset`)·stride for strides `strides` (default 8, 16, 32).

Boxes come back in the frame's pixel coordinates, after class-wise non-maximum suppression.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from gateway.vision.catalog import Manifest
from gateway.vision.engine import Model


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


def preprocess(frame: np.ndarray, manifest: Manifest) -> tuple[np.ndarray, Letterbox]:
    """A BGR frame -> the model's NCHW float32 blob and the transform back to frame pixels."""
    spec = manifest.input
    h, w = frame.shape[:2]
    if spec.resize == "letterbox":
        scale = min(spec.width / w, spec.height / h)
        nw, nh = round(w * scale), round(h * scale)
        dx, dy = (spec.width - nw) // 2, (spec.height - nh) // 2
        canvas: np.ndarray = np.full((spec.height, spec.width, 3), spec.pad_value, dtype=np.uint8)
        canvas[dy : dy + nh, dx : dx + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
        box = Letterbox(nw / w, nh / h, dx, dy)
    else:
        canvas = cv2.resize(frame, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
        box = Letterbox(spec.width / w, spec.height / h, 0.0, 0.0)
    if spec.colour == "rgb":
        canvas = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
    blob: np.ndarray = canvas.astype(np.float32)
    blob -= np.asarray(spec.mean, dtype=np.float32)
    blob /= np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(blob.transpose(2, 0, 1)[None]), box


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    out = np.empty_like(xywh)
    out[:, 0] = xywh[:, 0] - xywh[:, 2] / 2
    out[:, 1] = xywh[:, 1] - xywh[:, 3] / 2
    out[:, 2] = xywh[:, 0] + xywh[:, 2] / 2
    out[:, 3] = xywh[:, 1] + xywh[:, 3] / 2
    return out


def _grid(manifest: Manifest, strides: list[int], offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell origins (x, y) and strides of every anchor point, stride by stride, row-major."""
    xy, st = [], []
    for stride in strides:
        gw, gh = manifest.input.width // stride, manifest.input.height // stride
        ys, xs = np.mgrid[0:gh, 0:gw]
        xy.append(np.stack([xs.ravel(), ys.ravel()], axis=1) + offset)
        st.append(np.full(gw * gh, stride))
    return np.concatenate(xy).astype(np.float32), np.concatenate(st).astype(np.float32)


def decode(outputs: list[np.ndarray], manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    """Raw model outputs -> (boxes N×4 xyxy in model-input pixels, class scores N×C)."""
    layout, spec, opts = manifest.layout, manifest.input, manifest.decode
    out = outputs[0]
    ncls = len(manifest.classes)
    if layout == "yolo_region":
        anchors = np.asarray(opts["anchors"], dtype=np.float32)
        _, ch, gh, gw = out.shape
        a = len(anchors)
        m = out.reshape(a, ch // a, gh, gw).transpose(0, 2, 3, 1)  # A, H, W, 5+C
        ys, xs = np.mgrid[0:gh, 0:gw]
        cx = (xs + _sigmoid(m[..., 0])) / gw * spec.width
        cy = (ys + _sigmoid(m[..., 1])) / gh * spec.height
        bw = np.exp(m[..., 2]) * anchors[:, 0, None, None] / gw * spec.width
        bh = np.exp(m[..., 3]) * anchors[:, 1, None, None] / gh * spec.height
        boxes = _xywh_to_xyxy(np.stack([cx, cy, bw, bh], axis=-1).reshape(-1, 4))
        scores = (_sigmoid(m[..., 4:5]) * _softmax(m[..., 5:], axis=-1)).reshape(-1, ncls)
        return boxes, scores
    if layout == "yolov8":
        m = out[0].T  # N, 4+C
        return _xywh_to_xyxy(m[:, :4]), m[:, 4 : 4 + ncls]
    if layout == "yolov5" or (layout == "yolox" and opts.get("decoded", False)):
        m = out[0]
        return _xywh_to_xyxy(m[:, :4]), m[:, 4:5] * m[:, 5 : 5 + ncls]
    if layout == "yolox":
        m = out[0]
        cells, strides = _grid(manifest, list(opts.get("strides", [8, 16, 32])), 0.0)
        xy = (m[:, :2] + cells) * strides[:, None]
        wh = np.exp(m[:, 2:4]) * strides[:, None]
        return _xywh_to_xyxy(np.concatenate([xy, wh], axis=1)), m[:, 4:5] * m[:, 5 : 5 + ncls]
    if layout == "nanodet":
        m = out[0]
        bins = int(opts.get("reg_max", 7)) + 1
        cells, strides = _grid(
            manifest, list(opts.get("strides", [8, 16, 32])), float(opts.get("center_offset", 0.0))
        )
        dist = _softmax(m[:, ncls:].reshape(-1, 4, bins), axis=-1) @ np.arange(bins, dtype=np.float32)
        dist *= strides[:, None]
        centres = cells * strides[:, None]
        boxes = np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1)
        return boxes, m[:, :ncls]
    raise ValueError(f"unknown layout {layout!r}")


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression; indices kept, best first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx2 - xx1).clip(0) * (yy2 - yy1).clip(0)
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[overlap <= iou]
    return keep


class Detector:
    """Runs one detection model on frames. `detect` is blocking: call it on the engine thread."""

    def __init__(self, model: Model, min_score: float = 0.25, nms_iou: float = 0.45) -> None:
        self.model = model
        self.manifest = model.manifest
        self.min_score = min_score
        self.nms_iou = nms_iou

    def detect(self, frame: np.ndarray, labels: frozenset[str] | None = None) -> list[Detection]:
        """Detections above `min_score` (of the given labels, if any), best first per class."""
        blob, fit = preprocess(frame, self.manifest)
        boxes, scores = decode(self.model.run(blob), self.manifest)
        cls = scores.argmax(axis=1)
        best = scores[np.arange(len(cls)), cls]
        keep = best >= self.min_score
        if labels is not None:
            wanted = np.asarray([name in labels for name in self.manifest.classes])
            keep &= wanted[cls]
        boxes, best, cls = fit.to_frame(boxes[keep]), best[keep], cls[keep]
        h, w = frame.shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        out: list[Detection] = []
        for c in np.unique(cls):
            idx = np.flatnonzero(cls == c)
            for i in nms(boxes[idx], best[idx], self.nms_iou):
                j = idx[i]
                x1, y1, x2, y2 = (float(v) for v in boxes[j])
                out.append(Detection(self.manifest.classes[int(c)], float(best[j]), (x1, y1, x2, y2)))
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
