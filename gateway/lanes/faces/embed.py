"""Face embedding: an aligned chip in, a descriptor vector out, for any `embedding` manifest.

The manifest gives the chip size, colour order, normalisation, the five-point alignment template,
whether vectors are L2-normalised and the comparison metric, so another embedder (with its own
template and threshold) can replace the shipped one without code changes.
"""

from __future__ import annotations

import numpy as np

from gateway.inference.engine import Model
from gateway.lanes.faces import align
from gateway.lanes.faces.detect import Face


class Embedder:
    def __init__(self, model: Model) -> None:
        manifest = model.manifest
        if manifest.layout != "embedding":
            raise ValueError(f"model {manifest.name!r} has layout {manifest.layout!r}, expected 'embedding'")
        self.model = model
        self.name = manifest.name
        spec = manifest.input
        self.size = (spec.width, spec.height)
        self.rgb = spec.colour == "rgb"
        self.mean = np.array(spec.mean, np.float32)
        self.std = np.array(spec.std, np.float32)
        self.template = np.array(manifest.decode["align"], np.float32)
        self.dim = int(manifest.decode.get("dim", 128))
        self.threshold = float(manifest.decode.get("threshold", 0.5))
        # unit vectors: Euclidean distance is then a function of the cosine (√(2 − 2·cos)), so one
        # vectorised L2 matcher serves both kinds of embedder
        self.normalise = bool(manifest.decode.get("normalise", False))
        if manifest.decode.get("metric", "euclidean") != "euclidean":
            raise ValueError(f"model {manifest.name!r}: only the euclidean metric is supported")

    def chip(self, image: np.ndarray, face: Face) -> np.ndarray:
        return align.chip(image, face.landmarks, self.template, self.size)

    def embed(self, chip: np.ndarray) -> np.ndarray:
        """The descriptor (float32, `dim` values) of an aligned BGR chip."""
        pixels = chip[:, :, ::-1] if self.rgb else chip
        blob = ((pixels.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1)[None]
        (vector,) = self.model.run(np.ascontiguousarray(blob))
        vector = vector.reshape(-1).astype(np.float32)
        if self.normalise:
            norm = float(np.linalg.norm(vector))
            vector = vector / norm if norm > 0 else vector
        return vector
