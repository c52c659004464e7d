"""The `lanes` section of the upstream `stats` message: per lane what `lintel status` shows.

status.json holds each lane's full report (its module's type); upstream gets this summary of them,
with its own published types (the stats JSON Schema is generated from them, so a lane's internal
rename cannot change the protocol unnoticed): door relays (energised/released, fault), fire lanes
(state, dwell), face entrances (counts, lock-out, last decision's outcome and reason), care
households (configured devices that sent nothing), and the lanes configured but not running.

No personal data: entrances carry counts and outcomes, never a resident (the face lane's reports hold
no resident ids); doors, lanes, cameras and households are named by their config ids, as in their
events. Bounded: at most MAX_ITEMS entries per kind (`omitted` counts the rest) and MAX_TEXT
characters per free text, so a large building cannot push `stats` past a broker's packet limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

MAX_ITEMS = 64  # entries per kind (a door, a fire lane, an entrance, a household)
MAX_TEXT = 160  # characters of a fault, a reason or an unavailable lane's why

Text = Annotated[str, Field(max_length=MAX_TEXT)]


@dataclass(frozen=True, slots=True)
class DoorLane:
    id: str
    relay: str  # released, energised, releasing (a switch-off is being retried), unknown
    pulses: int  # since the daemon started
    failures: int
    fault: Text | None  # the relay's fault while one is raised


@dataclass(frozen=True, slots=True)
class FireLane:
    lane: str
    camera: str
    state: str  # clear, candidate, parked, violation, unknown
    alarm_open: bool
    dwell_s: int | None
    reason: Text | None  # why the lane is unknown (view lost, camera offline)


@dataclass(frozen=True, slots=True)
class FaceEntrance:
    id: str
    camera: str
    door: str
    camera_online: bool
    locked: bool  # locked out after repeated refusals
    granted: int  # since the daemon started
    denied: int
    last_decision_ms: int | None
    last_granted: bool | None
    last_reason: Text | None  # the last refusal's reason (never who)


@dataclass(frozen=True, slots=True)
class CareHousehold:
    id: str
    missing_data: Annotated[tuple[str, ...], Field(max_length=8)]  # devices that sent nothing yet


@dataclass(frozen=True, slots=True)
class LanesSummary:
    """A kind is null when that lane is not configured (or not running: see `unavailable`)."""

    unavailable: dict[str, Text]  # configured lanes that are not running, and why
    doors: Annotated[tuple[DoorLane, ...], Field(max_length=MAX_ITEMS)] | None
    fire_lanes: Annotated[tuple[FireLane, ...], Field(max_length=MAX_ITEMS)] | None
    face_entrances: Annotated[tuple[FaceEntrance, ...], Field(max_length=MAX_ITEMS)] | None
    face_residents: int | None  # how many residents the gallery holds (a count only)
    care: Annotated[tuple[CareHousehold, ...], Field(max_length=MAX_ITEMS)] | None
    omitted: int  # entries left out past MAX_ITEMS per kind


def summarise(lanes: Mapping[str, Any], unavailable: Mapping[str, str]) -> LanesSummary:
    """The summary of status.json's `lanes` (each lane's report as JSON) and `unavailable`.
    Tolerant of a lane report of another version: missing fields read as empty."""
    cut = _Cut()
    doors = _rows(lanes.get("doors"), "doors", cut, _door)
    fire = _rows(lanes.get("fire_lanes"), "lanes", cut, _fire_lane)
    faces = lanes.get("face_access")
    entrances = _rows(faces, "entrances", cut, _entrance)
    care = _rows(lanes.get("care"), "households", cut, _household)
    return LanesSummary(
        unavailable={str(k): _text(v) or "" for k, v in sorted(unavailable.items())[:MAX_ITEMS]},
        doors=doors,
        fire_lanes=fire,
        face_entrances=entrances,
        face_residents=_int(faces.get("residents")) if isinstance(faces, dict) else None,
        care=care,
        omitted=cut.omitted + max(0, len(unavailable) - MAX_ITEMS),
    )


class _Cut:
    omitted = 0


def _rows(report: Any, key: str, cut: _Cut, make: Any) -> tuple[Any, ...] | None:
    if not isinstance(report, dict):
        return None
    items = [item for item in report.get(key) or () if isinstance(item, dict)]
    cut.omitted += max(0, len(items) - MAX_ITEMS)
    return tuple(make(item) for item in items[:MAX_ITEMS])


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _door(d: dict[str, Any]) -> DoorLane:
    return DoorLane(
        str(d.get("id")),
        str(d.get("relay", "unknown")),
        _int(d.get("pulses")),
        _int(d.get("failures")),
        _text(d.get("fault")),
    )


def _fire_lane(f: dict[str, Any]) -> FireLane:
    return FireLane(
        str(f.get("lane")),
        str(f.get("camera")),
        str(f.get("state", "unknown")),
        f.get("alarm_open") is True,
        _opt_int(f.get("dwell_s")),
        _text(f.get("reason")),
    )


def _entrance(e: dict[str, Any]) -> FaceEntrance:
    return FaceEntrance(
        str(e.get("id")),
        str(e.get("camera")),
        str(e.get("door")),
        e.get("camera_online") is True,
        e.get("locked") is True,
        _int(e.get("granted")),
        _int(e.get("denied")),
        _opt_int(e.get("last_decision_ms")),
        _opt_bool(e.get("last_granted")),
        _text(e.get("last_reason")),
    )


def _household(h: dict[str, Any]) -> CareHousehold:
    missing = [str(m) for m in h.get("missing_data") or ()]
    return CareHousehold(str(h.get("id")), tuple(missing[:8]))
