"""What the face access lane reports: per entrance, what its camera and decisions are doing.

Built by `FaceAccessWatch.report()` from its own counters; `status.json`, `lintel status` and the
upstream `stats` are made from it (and read back into it: `lane.REPORT`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EntranceReport:
    id: str
    camera: str
    door: str
    camera_online: bool
    locked: bool
    frames: int
    granted: int
    denied: int
    pipeline_ms_avg: float | None
    last_decision_ms: int | None = None
    last_granted: bool | None = None
    last_reason: str | None = None
    denied_reasons: dict[str, int] = field(default_factory=dict)  # how many denials said why


@dataclass(frozen=True, slots=True)
class FaceAccessReport:
    residents: int
    threshold: float | None
    liveness: str
    errors: int
    entrances: tuple[EntranceReport, ...]
