"""Face detection with five landmarks (YuNet layout): a picture in, faces with boxes out.

The picture is scaled to fit the model's input size and padded at the bottom and right, so a
coordinate only needs the scale undone. A model with a free input size (our YuNet build) is fed
the scaled picture padded only to the next multiple of its largest stride: a 640×360 door frame
goes in as 640×384, not 640×640 (less work and activation memory, same scale).

Per stride `s` the model gives, for each grid cell, a class and an objectness score
(score = √(cls·obj)), a box (centre = (col + dx, row + dy)·s, size = exp(dw, dh)·s) and five
landmarks ((col + kx, row + ky)·s): eye centres (the subject's right eye first, i.e. left in the
picture), nose tip, mouth corners.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gateway.inference.boxes import nms
from gateway.inference.engine import Model


@dataclass(frozen=True, slots=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in picture pixels
    score: float
    landmarks: np.ndarray  # 5 × 2 float32: eyes (picture left, right), nose, mouth (left, right)

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


class FaceDetector:
    """Runs a `yunet` layout model; `detect` is called on the inference thread."""

    def __init__(self, model: Model, min_score: float = 0.6, nms_iou: float = 0.3) -> None:
        manifest = model.manifest
        if manifest.layout != "yunet":
            raise ValueError(f"model {manifest.name!r} has layout {manifest.layout!r}, expected 'yunet'")
        self.model = model
        self.width, self.height = manifest.input.width, manifest.input.height
        self.strides = [int(s) for s in manifest.decode.get("strides", [8, 16, 32])]
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.bgr = manifest.input.colour == "bgr"
        self.free_shape = model.free_shape
        self._grids: dict[tuple[int, int, int], np.ndarray] = {}

    def _grid(self, stride: int, width: int, height: int) -> np.ndarray:
        key = (stride, width, height)
        if key not in self._grids:
            cols, rows = width // stride, height // stride
            ys, xs = np.mgrid[0:rows, 0:cols]
            self._grids[key] = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
        return self._grids[key]

    def blob(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The model input for a BGR picture and the scale applied to it."""
        h, w = image.shape[:2]
        scale = min(self.width / w, self.height / h)
        resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))))
        height, width = self.height, self.width
        if self.free_shape:
            step = max(self.strides)
            height = min(height, -(-resized.shape[0] // step) * step)
            width = min(width, -(-resized.shape[1] // step) * step)
        # Written once, C-contiguous: a transposed view cast with `astype` keeps the view's strides,
        # and onnxruntime copied that non-contiguous 640×384 blob (2.9 MB more on every run's peak).
        blob = np.zeros((1, 3, height, width), np.float32)
        pixels = resized.transpose(2, 0, 1)
        blob[0, :, : resized.shape[0], : resized.shape[1]] = pixels if self.bgr else pixels[::-1]
        return blob, scale

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a BGR picture, best first."""
        blob, scale = self.blob(image)
        height, width = blob.shape[2:]
        outputs = dict(zip(self.model.output_names, self.model.run(blob), strict=True))
        boxes, scores, marks = [], [], []
        for s in self.strides:
            score = np.sqrt(
                np.clip(outputs[f"cls_{s}"][0, :, 0], 0, 1) * np.clip(outputs[f"obj_{s}"][0, :, 0], 0, 1)
            )
            keep = np.nonzero(score >= self.min_score)[0]
            if keep.size == 0:
                continue
            grid = self._grid(s, width, height)[keep]
            box = outputs[f"bbox_{s}"][0, keep]
            centre = (grid + box[:, :2]) * s
            size = np.exp(box[:, 2:4]) * s
            boxes.append(np.concatenate([centre - size / 2, centre + size / 2], axis=1))
            kps = outputs[f"kps_{s}"][0, keep].reshape(-1, 5, 2)
            marks.append((grid[:, None, :] + kps) * s)
            scores.append(score[keep])
        if not boxes:
            return []
        all_boxes = np.concatenate(boxes) / scale
        all_scores = np.concatenate(scores)
        all_marks = np.concatenate(marks) / scale
        faces = []
        for i in nms(all_boxes, all_scores, self.nms_iou):
            x1, y1, x2, y2 = (float(v) for v in all_boxes[i])
            faces.append(Face((x1, y1, x2, y2), float(all_scores[i]), all_marks[i].astype(np.float32)))
        return faces
