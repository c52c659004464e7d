"""One picture → the face at the door → quality → aligned chip → descriptor.

Used by the running lane (on the inference thread) and by `lintel faces enroll|verify|calibrate`,
so a photo is judged the same way at enrolment as a frame is at the door.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from gateway.inference.catalog import Manifest, pick
from gateway.inference.engine import InferenceEngine
from gateway.lanes.faces.config import FacesSection
from gateway.lanes.faces.consistency import context_chip
from gateway.lanes.faces.detect import Face, FaceDetector
from gateway.lanes.faces.embed import Embedder
from gateway.lanes.faces.pad import PadCrops, PresentationAttackDetector
from gateway.lanes.faces.quality import Quality, QualityLimits, assess, assess_chip


@dataclass(slots=True)
class Probe:
    face: Face | None  # the largest face (the person nearest the camera); None: no face
    faces: int  # how many faces the detector found
    quality: Quality | None
    vector: np.ndarray | None  # only for a face that passed the quality gates
    chip: np.ndarray | None
    detect_ms: float = 0.0
    embed_ms: float = 0.0
    # what the presentation-attack detector will judge if a decision asks (`pad.py`: scored
    # lazily, only on the frames a decision looks at)
    pad_crops: PadCrops | None = None
    context: np.ndarray | None = None  # the face and its surroundings, face-aligned (liveness)
    pad_ms: float = 0.0  # cutting the crops and the surroundings (not scoring them)

    @property
    def usable(self) -> bool:
        return self.vector is not None

    def reason(self) -> str:
        if self.face is None:
            return "no face found"
        assert self.quality is not None
        return "; ".join(self.quality.problems) or "ok"


class FacePipeline:
    def __init__(
        self,
        detector: FaceDetector,
        embedder: Embedder,
        limits: QualityLimits,
        pad: PresentationAttackDetector | None = None,
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.limits = limits
        self.pad = pad  # its crops cut from every usable face when set (`liveness = "model"`)

    def analyse(self, image: np.ndarray, pad: bool = True) -> Probe:
        """The nearest face of a BGR picture, embedded if it passes the quality gates, with what
        the presentation-attack detector and the medium check will look at (`pad_crops`,
        `context`) if there is a detector and `pad`. The detector itself does not run here:
        `pad_score` or the liveness check runs it when a decision needs the score."""
        started = time.perf_counter()
        faces = self.detector.detect(image)
        detect_ms = (time.perf_counter() - started) * 1000
        if not faces:
            return Probe(None, 0, None, None, None, detect_ms)
        face = max(faces, key=lambda f: f.eye_distance)
        return self._probe(image, face, len(faces), detect_ms, pad)

    def analyse_all(self, image: np.ndarray) -> list[Probe]:
        """Every face of a picture (for `lintel faces verify` on a group photo)."""
        started = time.perf_counter()
        faces = self.detector.detect(image)
        detect_ms = (time.perf_counter() - started) * 1000
        return [self._probe(image, f, len(faces), detect_ms) for f in faces]

    def _probe(self, image: np.ndarray, face: Face, count: int, detect_ms: float, pad: bool = True) -> Probe:
        quality = assess(face, image.shape, self.limits)
        if not quality.ok:  # no chip for a face already refused: saves the warp and the embedder
            return Probe(face, count, quality, None, None, detect_ms)
        chip = self.embedder.chip(image, face)
        if not assess_chip(quality, chip, self.limits).ok:
            return Probe(face, count, quality, None, chip, detect_ms)
        started = time.perf_counter()
        vector = self.embedder.embed(chip)
        probe = Probe(face, count, quality, vector, chip, detect_ms, (time.perf_counter() - started) * 1000)
        if self.pad is not None and pad:
            started = time.perf_counter()
            probe.pad_crops = self.pad.crops(image, face)
            probe.context = context_chip(image, face)
            probe.pad_ms = (time.perf_counter() - started) * 1000
        return probe

    def pad_score(self, probe: Probe) -> float | None:
        """The detector's live probability of a probe's face (None: no crops, or no detector)."""
        if self.pad is None or probe.pad_crops is None:
            return None
        return self.pad.score_crops(probe.pad_crops)


def face_models(faces: FacesSection, models: dict[str, Manifest]) -> tuple[Manifest, Manifest]:
    """The (detector, embedder) manifests `[faces]` names; ModelError naming the known ones."""
    return pick(faces.detector, models), pick(faces.embedder, models)


def build_pipeline(
    faces: FacesSection, engine: InferenceEngine, models: dict[str, Manifest], with_pad: bool = False
) -> FacePipeline:
    """Load the models from a catalog (`catalog.configured(config.vision)`, so `model_dir` and
    `manifest_dir` apply): detector and embedder, and with `with_pad` the presentation-attack
    detector's models (`faces.pad_models`). Blocking: call on the engine thread or from the CLI."""
    det, emb = face_models(faces, models)
    pad = (
        PresentationAttackDetector([engine.model(pick(name, models)) for name in faces.pad_models])
        if with_pad
        else None
    )
    return FacePipeline(
        FaceDetector(engine.model(det), faces.min_face_score),
        Embedder(engine.model(emb)),
        faces.limits(),
        pad,
    )
