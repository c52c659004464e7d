"""A building's lanes as its gateway reports them: the `lanes` section of its newest `stats`
(docs/upstream-schema.md; gateway/runtime/lane_summary.py builds it from what `lintel status`
shows). Every configured lane shows, silent or not: a door relay energised or released as the
gateway drives it, a fire lane's state and dwell, an entrance's lock-out and camera, a household's
missing data, a lane configured but not running and why.

Gateways older than that section publish none: `reported(stats)` is None, and the page rebuilds
the picture from events instead (fleet/lane_picture.py). The section is the gateway's JSON, hostile
until read: fields of the wrong type read as empty, never raise; the page escapes every value.
Pure functions: no database, no HTML.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fleet.lane_picture import LaneRow, open_by_source, problems_first

# the gateway's lane names (`unavailable` keys) -> the page's panel
PANEL_OF = {"doors": "doors", "fire_lanes": "fire_lanes", "face_access": "entrances", "care": "care"}


def reported(stats: dict[str, Any]) -> dict[str, Any] | None:
    lanes = stats.get("lanes")
    return lanes if isinstance(lanes, dict) else None


def _items(lanes: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = lanes.get(key)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def not_running(lanes: dict[str, Any], panel: str) -> list[LaneRow]:
    """The lanes of this panel that are configured but not running, with the gateway's why."""
    why = lanes.get("unavailable")
    if not isinstance(why, dict):
        return []
    return [
        LaneRow(str(name), "NOT RUNNING", _str(reason), True)
        for name, reason in why.items()
        if PANEL_OF.get(str(name)) == panel
    ]


def doors(lanes: dict[str, Any], alarms: Iterable[dict[str, Any]]) -> list[LaneRow]:
    """Each door's relay as the gateway drives it (released, energised, releasing, unknown)."""
    faults = open_by_source(alarms, "door_relay_fault")
    rows = not_running(lanes, "doors")
    for d in _items(lanes, "doors"):
        door, relay, fault = _str(d.get("id")), _str(d.get("relay")) or "unknown", _str(d.get("fault"))
        detail = f"relay {relay}, {_int(d.get('pulses'))} pulses since start"
        if _int(d.get("failures")):
            detail += f", {_int(d.get('failures'))} failed"
        if fault or door in faults:
            rows.append(LaneRow(door, "FAULT", f"{fault}; {detail}" if fault else detail, True))
        else:
            rows.append(LaneRow(door, relay, detail, relay not in ("released", "energised")))
    return problems_first(rows)


def fire_lanes(lanes: dict[str, Any], alarms: Iterable[dict[str, Any]]) -> list[LaneRow]:
    blocked = open_by_source(alarms, "fire_lane_blocked")
    rows = not_running(lanes, "fire_lanes")
    for f in _items(lanes, "fire_lanes"):
        lane, state, camera = _str(f.get("lane")), _str(f.get("state")) or "unknown", _str(f.get("camera"))
        dwell = f.get("dwell_s")
        parts = [f"{dwell} s" if isinstance(dwell, int) and not isinstance(dwell, bool) else ""]
        parts += [_str(f.get("reason")), f"camera {camera}" if camera else ""]
        detail = "; ".join(p for p in parts if p)
        if state == "violation" or f.get("alarm_open") is True or lane in blocked:
            rows.append(LaneRow(lane, "VIOLATION", detail, True))
        elif state == "unknown":
            rows.append(LaneRow(lane, "UNKNOWN", detail, True))
        else:
            rows.append(LaneRow(lane, state, detail, False))
    return problems_first(rows)


def entrances(lanes: dict[str, Any]) -> list[LaneRow]:
    rows = not_running(lanes, "entrances")
    for e in _items(lanes, "face_entrances"):
        entrance, door, camera = _str(e.get("id")), _str(e.get("door")), _str(e.get("camera"))
        detail = f"→ {door}: {_int(e.get('granted'))} in, {_int(e.get('denied'))} refused since start"
        if isinstance(e.get("last_granted"), bool):
            why = _str(e.get("last_reason"))
            detail += f"; last {'granted' if e['last_granted'] else 'denied'}" + (f" ({why})" if why else "")
        if e.get("locked") is True:
            rows.append(LaneRow(entrance, "LOCKED OUT", detail, True))
        elif e.get("camera_online") is not True:
            rows.append(LaneRow(entrance, f"{camera} OFFLINE", detail, True))
        else:
            rows.append(LaneRow(entrance, "ok", detail, False))
    return problems_first(rows)


def households(lanes: dict[str, Any], alarms: Iterable[dict[str, Any]]) -> list[LaneRow]:
    care_alarms = open_by_source(alarms, "care_")
    rows = not_running(lanes, "care")
    for h in _items(lanes, "care"):
        household = _str(h.get("id"))
        missing = h.get("missing_data")
        missing = [_str(m) for m in missing] if isinstance(missing, list) else []
        if household in care_alarms:
            what = ", ".join(sorted({str(a["kind"]) for a in care_alarms[household]}))
            rows.append(LaneRow(household, "ALARM", what, True))
        elif missing:
            rows.append(LaneRow(household, "NO DATA", f"no data from {', '.join(missing)}", True))
        else:
            rows.append(LaneRow(household, "ok", "", False))
    return problems_first(rows)
