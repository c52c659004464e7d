"""Presentation-attack detection (PAD) of one frame: MiniFASNet, as its authors run it.

Silent-Face-Anti-Spoofing (minivision-ai, Apache-2.0) trained two 80×80 classifiers on faces seen
by phone cameras, live and presented (prints, screens). Each sees the detector's face box widened
about its centre by its own factor (2.7 and 4.0: the wider one sees the edge of a phone or a sheet
of paper around the face), the box shifted, never cut, at the picture's edge, the crop stretched to
80×80, BGR pixels 0-255. Their softmax outputs are summed; class 1 is a live face. `score` is the
live probability averaged over the models (0-1; the authors call a face live when live is the
summed argmax, roughly ≥ 0.5).

What it sees is the physical medium: paper texture and print dots, a screen's pixel grid, moiré,
glare, the bezel. A picture composited digitally into a video (our synthetic door clips) has none
of these and scores as live: the synthetic attack clips are refused by the temporal checks of
`liveness.ModelLiveness`, not by this model (docs/face-calibration.md).

Cost: two runs of a 0.44 M-parameter network on 80×80 inputs, ~8 ms of CPU per face on one
core of the dev machine (bench/pad.py). So the door does not score every frame: `crops` (two
resizes, ~0.05 ms) is taken from each usable frame, and `score_crops` runs only when a decision
asks for it, on the frames it judges (`liveness.ModelLiveness`). The crops are 2 × 80×80×3
bytes; the frame itself is not kept.
"""

from __future__ import annotations

import cv2
import numpy as np

from gateway.inference.engine import Model
from gateway.lanes.faces.detect import Face


def widened_box(
    shape: tuple[int, ...], box: tuple[float, float, float, float], scale: float
) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of `box` widened `scale` times about its centre, inside the picture: the
    factor shrinks to what fits, and a box past an edge is shifted back, never cut (so the model
    always sees the proportions it was trained on)."""
    height, width = shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    scale = min((height - 1) / bh, (width - 1) / bw, scale)
    half_w, half_h = bw * scale / 2, bh * scale / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = min(max(cx - half_w, 0.0), width - 1 - 2 * half_w)
    top = min(max(cy - half_h, 0.0), height - 1 - 2 * half_h)
    return int(left), int(top), int(left + 2 * half_w), int(top + 2 * half_h)


class PadModel:
    """One MiniFASNet: a `pad` layout manifest with its crop scale and live class."""

    def __init__(self, model: Model) -> None:
        manifest = model.manifest
        if manifest.layout != "pad":
            raise ValueError(f"model {manifest.name!r} has layout {manifest.layout!r}, expected 'pad'")
        self.model = model
        self.name = manifest.name
        self.size = (manifest.input.width, manifest.input.height)
        self.bgr = manifest.input.colour == "bgr"
        self.scale = float(manifest.decode["crop_scale"])
        self.live_class = int(manifest.decode.get("real_class", 1))

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The model's input pixels (80×80, uint8, in the model's colour order)."""
        x1, y1, x2, y2 = widened_box(image.shape, face.box, self.scale)
        pixels = cv2.resize(image[y1 : y2 + 1, x1 : x2 + 1], self.size)
        return pixels if self.bgr else np.ascontiguousarray(pixels[:, :, ::-1])

    def live_probability_of(self, pixels: np.ndarray) -> float:
        """Live probability of one crop made by `crop`."""
        blob = np.ascontiguousarray(pixels.transpose(2, 0, 1)[None], dtype=np.float32)
        (probabilities,) = self.model.run(blob)
        return float(probabilities.reshape(-1)[self.live_class])

    def live_probability(self, image: np.ndarray, face: Face) -> float:
        return self.live_probability_of(self.crop(image, face))


PadCrops = tuple[np.ndarray, ...]  # one crop per model of the detector, in its order


class PresentationAttackDetector:
    """The authors' ensemble: every model on its own crop, live probabilities averaged."""

    def __init__(self, models: list[Model]) -> None:
        if not models:
            raise ValueError("a presentation-attack detector needs at least one model")
        self.models = [PadModel(m) for m in models]
        self.name = "+".join(m.name for m in self.models)

    def crops(self, image: np.ndarray, face: Face) -> PadCrops:
        """What the models will look at, cut from the frame now (cheap) to be scored later."""
        return tuple(m.crop(image, face) for m in self.models)

    def score_crops(self, crops: PadCrops) -> float:
        """Live probability (0: an attack, 1: live) of crops made by `crops` (runs the models)."""
        if len(crops) != len(self.models):
            raise ValueError(f"{len(crops)} crops for {len(self.models)} models")
        return float(np.mean([m.live_probability_of(c) for m, c in zip(self.models, crops, strict=True)]))

    def score(self, image: np.ndarray, face: Face) -> float:
        """Live probability of the face (0: an attack, 1: live)."""
        return self.score_crops(self.crops(image, face))
