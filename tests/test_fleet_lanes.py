"""A building's lanes as the fleet page shows them, rebuilt from the events and alarms a gateway
published (fleet/lane_picture.py): what an operator reads must match what happened on site."""

from __future__ import annotations

from typing import Any

from fleet import lane_picture


def ev(source: str, kind: str, last_ms: int, recent: int = 1, **attrs: Any) -> dict[str, Any]:
    return {"source_id": source, "kind": kind, "recent": recent, "last_ms": last_ms, "last_attrs": attrs}


def alarm(source: str, kind: str, state: str = "open") -> dict[str, Any]:
    return {"source_id": source, "kind": kind, "state": state}


def test_a_fire_lane_with_an_open_alarm_is_a_violation_until_it_resolves_whatever_came_after():
    events = [
        ev("lane-a", "fire_lane_blocked", 1000, camera="cam-1"),
        ev("lane-a", "fire_lane_visible", 2000, camera="cam-1"),
        ev("lane-b", "fire_lane_blocked", 1000),
        ev("lane-b", "fire_lane_cleared", 3000),
        ev("lane-c", "fire_lane_visible", 1000),
        ev("lane-c", "fire_lane_unknown", 4000, reason="camera offline", camera="cam-3"),
    ]
    rows = {r.name: r for r in lane_picture.fire_lanes(events, [alarm("lane-a", "fire_lane_blocked")])}
    assert (rows["lane-a"].state, rows["lane-a"].problem) == ("VIOLATION", True)
    assert "cam-1" in rows["lane-a"].detail
    assert (rows["lane-b"].state, rows["lane-b"].problem) == ("clear", False)
    assert rows["lane-c"].state == "UNKNOWN" and "camera offline" in rows["lane-c"].detail
    # problems first
    assert [r.problem for r in lane_picture.fire_lanes(events, [])] == sorted(
        (r.problem for r in lane_picture.fire_lanes(events, [])), reverse=True
    )


def test_an_entrance_shows_its_day_and_a_lockout_newer_than_any_decision():
    events = [
        ev("front", "access_granted", 5000, recent=7, door="lobby"),
        ev("front", "access_denied", 6000, recent=2, reason="unknown_face", door="lobby"),
        ev("back", "access_denied", 1000, recent=5, reason="liveness_failed"),
        ev("back", "access_lockout", 2000),
    ]
    rows = {r.name: r for r in lane_picture.entrances(events)}
    assert rows["front"].state == "ok"
    assert "7 in, 2 refused" in rows["front"].detail and "lobby" in rows["front"].detail
    assert "last denied (unknown_face)" in rows["front"].detail
    assert (rows["back"].state, rows["back"].problem) == ("LOCKED OUT", True)
    # a decision after the lockout ends it
    later = [*events, ev("back", "access_granted", 3000)]
    assert {r.name: r.state for r in lane_picture.entrances(later)}["back"] == "ok"


def test_door_relays_and_households_show_faults_alarms_and_missing_data():
    events = [
        ev("lobby", "door_pulsed", 1000, recent=4),
        ev("garage", "door_pulsed", 1000, recent=1),
        ev("garage", "door_relay_fault", 2000, error="no answer from the relay"),
        ev("flat-1", "care_data_missing", 3000, signal="water"),
        ev("flat-2", "care_data_missing", 3000, signal="door"),
        ev("flat-2", "care_data_restored", 4000, signal="door"),
    ]
    alarms = [alarm("garage", "door_relay_fault"), alarm("flat-3", "care_no_activity", "acknowledged")]
    doors = {r.name: r for r in lane_picture.doors(events, alarms)}
    assert doors["lobby"].state == "ok" and "4 pulses" in doors["lobby"].detail
    assert doors["garage"].state == "FAULT" and "no answer" in doors["garage"].detail
    homes = {r.name: r for r in lane_picture.households(events, alarms)}
    assert (homes["flat-1"].state, homes["flat-1"].detail) == ("NO DATA", "no data from water")
    assert homes["flat-2"].state == "ok"
    assert (homes["flat-3"].state, homes["flat-3"].detail) == ("ALARM", "care_no_activity")
