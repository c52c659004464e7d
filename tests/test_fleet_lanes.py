"""A building's lanes as the fleet page shows them, rebuilt from the events and alarms a gateway
published (fleet/lane_picture.py): what an operator reads must match what happened on site."""

from __future__ import annotations

from typing import Any

from fleet import lane_picture, lane_report


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


def test_a_gateway_that_reports_its_lanes_shows_each_as_reported_silent_or_not():
    """With the `lanes` section of `stats`, the page shows every configured lane (no event
    needed): the relay energised as the gateway drives it, a lane that is not running and why."""
    stats = {
        "lanes": {
            "unavailable": {"fire_lanes": "camera model missing"},
            "doors": [
                {"id": "lobby", "relay": "energised", "pulses": 3, "failures": 0, "fault": None},
                {"id": "garage", "relay": "released", "pulses": 0, "failures": 2, "fault": "no answer"},
                {"id": "bike", "relay": "releasing", "pulses": 1, "failures": 1, "fault": None},
            ],
            "fire_lanes": None,
            "face_entrances": [
                {"id": "front", "camera": "cam-1", "door": "lobby", "camera_online": False, "locked": False,
                 "granted": 4, "denied": 1, "last_decision_ms": 1, "last_granted": False,
                 "last_reason": "unknown_face"},
            ],
            "face_residents": 2,
            "care": [{"id": "flat-1", "missing_data": ["water-1"]}, {"id": "flat-2", "missing_data": []}],
            "omitted": 0,
        }
    }  # fmt: skip
    lanes = lane_report.reported(stats)
    assert lanes is not None and lane_report.reported({}) is None  # older gateways: rebuilt from events
    doors = {r.name: r for r in lane_report.doors(lanes, [])}
    assert (doors["lobby"].state, doors["lobby"].problem) == ("energised", False)
    assert "relay energised, 3 pulses" in doors["lobby"].detail
    assert (doors["garage"].state, doors["garage"].problem) == ("FAULT", True) and "no answer" in doors[
        "garage"
    ].detail
    assert (doors["bike"].state, doors["bike"].problem) == ("releasing", True)  # a switch-off being retried
    fire = lane_report.fire_lanes(lanes, [])
    assert [(r.name, r.state, r.detail) for r in fire] == [
        ("fire_lanes", "NOT RUNNING", "camera model missing")
    ]
    (front,) = lane_report.entrances(lanes)
    assert (
        front.state == "cam-1 OFFLINE"
        and "4 in, 1 refused" in front.detail
        and "(unknown_face)" in front.detail
    )
    care = {r.name: r for r in lane_report.households(lanes, [alarm("flat-2", "care_no_activity")])}
    assert care["flat-1"].state == "NO DATA" and "water-1" in care["flat-1"].detail
    assert care["flat-2"].state == "ALARM"  # the fleet's open care alarm wins


def test_a_hostile_lanes_section_reads_as_empty_never_raises():
    for junk in (
        {"doors": "lobby"},
        {"doors": [1, None, {"relay": 5}]},
        {"unavailable": ["x"], "care": [{}]},
    ):
        lanes = lane_report.reported({"lanes": junk})
        assert lanes is not None
        rows = [
            *lane_report.doors(lanes, []),
            *lane_report.fire_lanes(lanes, []),
            *lane_report.entrances(lanes),
        ]
        rows += lane_report.households(lanes, [])
        assert all(isinstance(r.detail, str) and isinstance(r.state, str) for r in rows)
    (odd,) = lane_report.doors({"doors": [{"relay": 5}]}, [])
    assert odd.state == "unknown" and odd.problem
