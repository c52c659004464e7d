"""What one step of an entrance's decision rule (`decision.Decider`) takes and gives: an
`Observation` (one usable frame) in; a `Decision`, or a resident's `Pending` decision that waits
for its liveness check, out. Here, not in decision.py, so neither module imports the other.

A `Pending` holds only what the check reads (its frames and the check), so the check can run on
the inference thread while the event loop goes on; `Decider.finish` turns it into a `Decision`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.lanes.faces.config import FaceAccessConfig
from gateway.lanes.faces.gallery import Resident
from gateway.lanes.faces.liveness import LiveFrame, LivenessCheck, LivenessResult
from gateway.lanes.faces.match import Match


@dataclass(slots=True)
class Observation:
    ts_ms: int  # capture time of the frame
    match: Match
    label: str  # resident id, UNKNOWN or AMBIGUOUS
    landmarks: np.ndarray
    chip: np.ndarray | None = None  # the aligned face: liveness, and unknown crops when kept
    vector: np.ndarray | None = None  # in memory only: tells one stranger from the next
    pad: float | None = None  # presentation-attack detector's live probability (liveness "model")
    context: np.ndarray | None = None  # the face's surroundings (liveness "model")
    pad_crops: tuple[np.ndarray, ...] | None = None  # the PAD's input, scored when a decision asks


@dataclass(slots=True)
class Decision:
    granted: bool
    reason: str  # "match" for a grant; why not otherwise
    resident: Resident | None
    distance: float
    margin: float
    latency_ms: int
    frames: int
    liveness: str
    liveness_check: str  # which check ran ("model", "micro_motion", "off")
    chip: np.ndarray | None = None
    liveness_detail: str = ""  # what the check measured (logged, never sent: numbers only)

    def body(self, entrance: FaceAccessConfig) -> dict[str, Any]:
        """The event body: ids and numbers, never a name or a picture."""
        body: dict[str, Any] = {
            "door": entrance.door,
            "entrance": entrance.id,
            "method": entrance.require,  # "face" or "face+tag"
            "resident_id": self.resident.id if self.resident else None,
            "distance": _num(self.distance),
            "margin": _num(self.margin),
            "latency_ms": self.latency_ms,
            "frames": self.frames,
            "liveness": self.liveness,
            "liveness_check": self.liveness_check,
        }
        if not self.granted:
            body["reason"] = self.reason
        return body


def _num(value: float) -> float | None:
    return round(value, 3) if np.isfinite(value) else None


@dataclass(slots=True)
class Pending:
    """A resident's decision waiting for its liveness check (`Decider.step`'s first half)."""

    label: str  # the resident's id
    agreeing: list[Observation]
    match: Match | None  # the approach's (fused) match; None: the closest agreeing frame's
    frames: list[LiveFrame]  # what liveness judges
    vector: np.ndarray | None  # the descriptor decided (fused, or the closest frame's)
    liveness: LivenessCheck
    changed: bool = False  # another face was seen, or the face left, before `finish`

    def check(self) -> LivenessResult:
        """The liveness check (reads only this object: safe on the inference thread)."""
        return self.liveness.check(self.frames)

    def stages(self) -> list[Callable[[], LivenessResult | None]]:
        """The check as jobs run one after another, the first answer wins (None: go on): a
        check's own `stages` (`ModelLiveness`: signals, then the detector) or the whole check."""
        staged = getattr(self.liveness, "stages", None)
        return staged(self.frames) if staged is not None else [self.check]
