"""A building's lanes as the fleet can see them: from the events and alarms its gateway published.

On site, `lintel status --watch` reads each lane's own report from status.json; the gateway does not
publish those reports, so the fleet rebuilds the same panels from what it stores (docs/upstream-
schema.md for the events): a fire lane's state from its open `fire_lane_blocked` alarm or its
newest `fire_lane_unknown` / `fire_lane_visible` / `fire_lane_cleared`; a face entrance's decisions
of the last day; a door relay's pulses and faults; a household's open care alarms and missing data.
A lane configured but silent since the window began does not show: the page says so.
Input rows are `queries.lane_events` (per source and kind: `recent`, `last_ms`, `last_attrs`) and
`queries.alarms` (open and acknowledged). Pure functions: no database, no HTML.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

FIRE_KINDS = ("fire_lane_blocked", "fire_lane_cleared", "fire_lane_unknown", "fire_lane_visible")
ACCESS_KINDS = ("access_granted", "access_denied", "access_lockout", "access_door_failed")
DOOR_KINDS = ("door_pulsed", "door_relay_fault", "door_relay_recovered")
CARE_KINDS = ("care_data_missing", "care_data_restored", "care_resolved")
LANE_EVENT_KINDS = FIRE_KINDS + ACCESS_KINDS + DOOR_KINDS + CARE_KINDS


@dataclass(frozen=True, slots=True)
class LaneRow:
    name: str  # the lane, entrance, door or household id
    state: str  # a word or two: VIOLATION, clear, UNKNOWN, LOCKED OUT, FAULT, ok, ...
    detail: str  # plain text, escaped by the page
    problem: bool  # shown first, in red


def _by_source(
    events: Iterable[dict[str, Any]], kinds: tuple[str, ...]
) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for ev in events:
        if ev["kind"] in kinds:
            out[str(ev["source_id"])][ev["kind"]] = ev
    return out


def _open(alarms: Iterable[dict[str, Any]], prefix: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in alarms:
        if str(a.get("kind") or "").startswith(prefix) and a.get("state") in ("open", "acknowledged"):
            out[str(a["source_id"])].append(a)
    return out


def _attr(ev: dict[str, Any] | None, name: str) -> Any:
    attrs = (ev or {}).get("last_attrs")
    return attrs.get(name) if isinstance(attrs, dict) else None


def _sorted(rows: list[LaneRow]) -> list[LaneRow]:
    return sorted(rows, key=lambda r: (not r.problem, r.name))


def fire_lanes(events: Iterable[dict[str, Any]], alarms: Iterable[dict[str, Any]]) -> list[LaneRow]:
    blocked = _open(alarms, "fire_lane_blocked")
    rows = []
    for lane, kinds in _by_source(events, FIRE_KINDS).items():
        camera = next((str(_attr(ev, "camera")) for ev in kinds.values() if _attr(ev, "camera")), "")
        seen = f"camera {camera}" if camera else ""
        if lane in blocked:
            acked = any(a["state"] == "acknowledged" for a in blocked[lane])
            rows.append(
                LaneRow(lane, "VIOLATION", f"{'acknowledged, ' if acked else ''}{seen}".strip(", "), True)
            )
            continue
        newest = max(kinds.values(), key=lambda ev: ev["last_ms"])
        if newest["kind"] == "fire_lane_unknown":
            reason = _attr(newest, "reason") or "view lost"
            rows.append(LaneRow(lane, "UNKNOWN", f"{reason}; {seen}".strip("; "), True))
        else:
            rows.append(LaneRow(lane, "clear", seen, False))
    return _sorted(rows)


def entrances(events: Iterable[dict[str, Any]]) -> list[LaneRow]:
    rows = []
    for entrance, kinds in _by_source(events, ACCESS_KINDS).items():
        granted = kinds.get("access_granted", {}).get("recent", 0)
        denied = kinds.get("access_denied", {}).get("recent", 0)
        counts = f"{granted} in, {denied} refused in the last day"
        lockout = kinds.get("access_lockout")
        decisions = [ev for k, ev in kinds.items() if k in ("access_granted", "access_denied")]
        if lockout and all(lockout["last_ms"] >= ev["last_ms"] for ev in decisions):
            rows.append(LaneRow(entrance, "LOCKED OUT", counts, True))
            continue
        failed = kinds.get("access_door_failed")
        door = next((str(_attr(ev, "door")) for ev in kinds.values() if _attr(ev, "door")), "")
        detail = f"→ {door}: {counts}" if door else counts
        if decisions:
            last = max(decisions, key=lambda ev: ev["last_ms"])
            why = _attr(last, "reason")
            detail += f"; last {last['kind'].removeprefix('access_')}" + (f" ({why})" if why else "")
        if failed and all(failed["last_ms"] >= ev["last_ms"] for ev in decisions):
            rows.append(LaneRow(entrance, "DOOR FAILED", detail, True))
        else:
            rows.append(LaneRow(entrance, "ok", detail, False))
    return _sorted(rows)


def doors(events: Iterable[dict[str, Any]], alarms: Iterable[dict[str, Any]]) -> list[LaneRow]:
    faults = _open(alarms, "door_relay_fault")
    rows = []
    by_source = _by_source(events, DOOR_KINDS)
    for door in set(by_source) | set(faults):
        kinds = by_source.get(door, {})
        pulses = kinds.get("door_pulsed", {}).get("recent", 0)
        detail = f"{pulses} pulses in the last day"
        if door in faults:
            error = _attr(kinds.get("door_relay_fault"), "error")
            rows.append(LaneRow(door, "FAULT", f"{error}; {detail}" if error else detail, True))
        else:
            rows.append(LaneRow(door, "ok", detail, False))
    return _sorted(rows)


def households(events: Iterable[dict[str, Any]], alarms: Iterable[dict[str, Any]]) -> list[LaneRow]:
    care_alarms = _open(alarms, "care_")
    by_source = _by_source(events, CARE_KINDS)
    rows = []
    for household in set(by_source) | set(care_alarms):
        kinds = by_source.get(household, {})
        missing, restored = kinds.get("care_data_missing"), kinds.get("care_data_restored")
        if household in care_alarms:
            what = ", ".join(sorted({str(a["kind"]) for a in care_alarms[household]}))
            rows.append(LaneRow(household, "ALARM", what, True))
        elif missing and (restored is None or missing["last_ms"] > restored["last_ms"]):
            signal = _attr(missing, "signal") or "a signal"
            rows.append(LaneRow(household, "NO DATA", f"no data from {signal}", True))
        else:
            rows.append(LaneRow(household, "ok", "", False))
    return _sorted(rows)
