"""What the fire-lanes component reports (status.json, `lintel status`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FireLaneState:
    lane: str
    camera: str
    state: str
    alarm_open: bool
    dwell_s: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FireLaneReport:
    detector: str
    detector_runs: int
    detect_ms_avg: float | None
    detector_errors: int
    evidence_saved: int
    lanes: tuple[FireLaneState, ...]
