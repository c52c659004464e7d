"""Output decoders of the detector layouts a manifest can name (`output.layout`).

- `darknet_yolo` — Darknet YOLOv3/v4 heads (our converter's `yolo0`, `yolo1`, … outputs), each a
  raw 1×(A·(5+C))×H×W map with the anchors `masks[i]` of the manifest's `anchors` (input pixels):
  cx = (col + σ(tx)·s − (s−1)/2) / W (s = `scale_x_y`, Darknet's `new_coords = 0`),
  w = exp(tw)·anchor_w; objectness and classes are independent sigmoids; score = obj · class.
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

`decode` returns boxes in model-input pixels of the input actually fed (`size`, which differs from
the manifest's for a model with a free input shape).
"""

from __future__ import annotations

import numpy as np

from gateway.inference.catalog import Manifest


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


def _grid(size: tuple[int, int], strides: list[int], offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell origins (x, y) and strides of every anchor point, stride by stride, row-major."""
    xy, st = [], []
    for stride in strides:
        gw, gh = size[0] // stride, size[1] // stride
        ys, xs = np.mgrid[0:gh, 0:gw]
        xy.append(np.stack([xs.ravel(), ys.ravel()], axis=1) + offset)
        st.append(np.full(gw * gh, stride))
    return np.concatenate(xy).astype(np.float32), np.concatenate(st).astype(np.float32)


def _darknet_yolo(
    outputs: list[np.ndarray], opts: dict, size: tuple[int, int], ncls: int
) -> tuple[np.ndarray, np.ndarray]:
    anchors = np.asarray(opts["anchors"], dtype=np.float32)
    masks = opts["masks"]
    scale = float(opts.get("scale_x_y", 1.0))
    if int(opts.get("new_coords", 0)) != 0:
        raise ValueError("darknet_yolo: only new_coords = 0 (sigmoid xy, exp wh) is supported")
    all_boxes, all_scores = [], []
    for out, mask in zip(outputs, masks, strict=True):
        _, ch, gh, gw = out.shape
        a = len(mask)
        m = out.reshape(a, ch // a, gh, gw).transpose(0, 2, 3, 1)  # A, H, W, 5+C
        ys, xs = np.mgrid[0:gh, 0:gw]
        shift = (scale - 1) / 2
        cx = (xs + _sigmoid(m[..., 0]) * scale - shift) / gw * size[0]
        cy = (ys + _sigmoid(m[..., 1]) * scale - shift) / gh * size[1]
        own = anchors[mask]
        bw = np.exp(m[..., 2]) * own[:, 0, None, None]
        bh = np.exp(m[..., 3]) * own[:, 1, None, None]
        all_boxes.append(_xywh_to_xyxy(np.stack([cx, cy, bw, bh], axis=-1).reshape(-1, 4)))
        all_scores.append((_sigmoid(m[..., 4:5]) * _sigmoid(m[..., 5 : 5 + ncls])).reshape(-1, ncls))
    return np.concatenate(all_boxes), np.concatenate(all_scores)


def decode(
    outputs: list[np.ndarray], manifest: Manifest, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Raw model outputs -> (boxes N×4 xyxy in model-input pixels, class scores N×C).

    `size` is the (width, height) of the input fed; the manifest's by default."""
    layout, opts = manifest.layout, manifest.decode
    size = size or (manifest.input.width, manifest.input.height)
    out = outputs[0]
    ncls = len(manifest.classes)
    if layout == "darknet_yolo":
        return _darknet_yolo(outputs, opts, size, ncls)
    if layout == "yolo_region":
        anchors = np.asarray(opts["anchors"], dtype=np.float32)
        _, ch, gh, gw = out.shape
        a = len(anchors)
        m = out.reshape(a, ch // a, gh, gw).transpose(0, 2, 3, 1)  # A, H, W, 5+C
        ys, xs = np.mgrid[0:gh, 0:gw]
        cx = (xs + _sigmoid(m[..., 0])) / gw * size[0]
        cy = (ys + _sigmoid(m[..., 1])) / gh * size[1]
        bw = np.exp(m[..., 2]) * anchors[:, 0, None, None] / gw * size[0]
        bh = np.exp(m[..., 3]) * anchors[:, 1, None, None] / gh * size[1]
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
        cells, strides = _grid(size, list(opts.get("strides", [8, 16, 32])), 0.0)
        xy = (m[:, :2] + cells) * strides[:, None]
        wh = np.exp(m[:, 2:4]) * strides[:, None]
        return _xywh_to_xyxy(np.concatenate([xy, wh], axis=1)), m[:, 4:5] * m[:, 5 : 5 + ncls]
    if layout == "nanodet":
        m = out[0]
        bins = int(opts.get("reg_max", 7)) + 1
        cells, strides = _grid(
            size, list(opts.get("strides", [8, 16, 32])), float(opts.get("center_offset", 0.0))
        )
        dist = _softmax(m[:, ncls:].reshape(-1, 4, bins), axis=-1) @ np.arange(bins, dtype=np.float32)
        dist *= strides[:, None]
        centres = cells * strides[:, None]
        boxes = np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1)
        return boxes, m[:, :ncls]
    raise ValueError(f"unknown layout {layout!r}")
