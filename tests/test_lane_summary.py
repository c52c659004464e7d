"""The `lanes` section of `stats` (gateway/runtime/lane_summary.py): built from the lanes' own report
types as status.json holds them, valid against the published schema, bounded for a large building,
and naming no resident."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from gateway.lanes.care.lane import CareReport, HouseholdReport
from gateway.lanes.doors.lane import DoorReport, DoorsReport
from gateway.lanes.faces.report import EntranceReport, FaceAccessReport
from gateway.lanes.fire_lanes.report import FireLaneReport, FireLaneState
from gateway.runtime import report as rp
from gateway.runtime.lane_summary import MAX_ITEMS, MAX_TEXT, summarise
from tests.test_reports import daemon_for

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "docs" / "schema" / "v1" / "stats.json").read_text()
)


def door(i: int, relay: str = "released", fault: str | None = None) -> DoorReport:
    return DoorReport(f"door-{i}", relay, pulses=i, failures=0, hardware_timed=False, fault=fault)


def entrance(name: str, **kw: Any) -> EntranceReport:
    base: dict[str, Any] = dict(
        id=name, camera="cam-1", door="lobby", camera_online=True, locked=False, frames=900,
        granted=3, denied=1, pipeline_ms_avg=41.0, last_decision_ms=1_700_000_000_000,
        last_granted=False, last_reason="unknown_face", denied_reasons={"unknown_face": 1},
    )  # fmt: skip
    return EntranceReport(**{**base, **kw})


def lanes(doors: int = 2, fault: str | None = None) -> dict[str, Any]:
    """The lanes of status.json as the daemon writes them (each lane's report, to JSON)."""
    return rp.to_json(
        {
            "doors": DoorsReport(
                3, 0, (door(0, "energised"), *(door(i, fault=fault) for i in range(1, doors)))
            ),
            "fire_lanes": FireLaneReport(
                "yolo", 10, 30.0, 0, 1, (FireLaneState("lane-n", "cam-2", "violation", True, 95),)
            ),
            "face_access": FaceAccessReport(12, 1.06, "model", 0, (entrance("front"),)),
            "care": CareReport((HouseholdReport("flat-1", ("water-1",)), HouseholdReport("flat-2", ()))),
        }
    )


@pytest.fixture
def stats_body(tmp_path: Path) -> dict[str, Any]:
    """A real stats body (no lane configured) from a daemon on a minimal config."""
    return rp.to_json(daemon_for(tmp_path).report().stats())


def stats_message(body: dict[str, Any], summary: Any) -> dict[str, Any]:
    return {
        "schema": "lintel.stats/1",
        "gateway_id": "gw-test",
        "seq": 1,
        "ts_ms": 1,
        **body,
        "lanes": rp.to_json(summary),
    }


def test_every_lane_as_lintel_status_shows_it_validates_against_the_published_schema(
    stats_body: dict[str, Any],
) -> None:
    summary = summarise(lanes(), {"rules": "ValueError: bad rule"})
    message = stats_message(stats_body, summary)
    assert not list(Draft202012Validator(SCHEMA).iter_errors(message))
    got = message["lanes"]
    assert [(d["id"], d["relay"]) for d in got["doors"]] == [("door-0", "energised"), ("door-1", "released")]
    lane = got["fire_lanes"][0]
    assert (lane["lane"], lane["camera"], lane["state"], lane["alarm_open"], lane["dwell_s"]) == (
        "lane-n", "cam-2", "violation", True, 95,
    )  # fmt: skip
    assert got["face_entrances"][0]["locked"] is False and got["face_residents"] == 12
    assert got["care"][0] == {"id": "flat-1", "missing_data": ["water-1"]}
    assert got["unavailable"] == {"rules": "ValueError: bad rule"}
    # a lane not configured is null, not an empty list
    none = rp.to_json(summarise({}, {}))
    assert none["doors"] is None and none["face_entrances"] is None and none["omitted"] == 0


def test_a_large_building_is_bounded_and_says_how_much_it_left_out(stats_body: dict[str, Any]) -> None:
    summary = summarise(lanes(doors=MAX_ITEMS + 36, fault="x" * 5000), {})
    message = stats_message(stats_body, summary)
    assert not list(Draft202012Validator(SCHEMA).iter_errors(message))
    assert len(message["lanes"]["doors"]) == MAX_ITEMS and message["lanes"]["omitted"] == 36
    assert max(len(d["fault"] or "") for d in message["lanes"]["doors"]) == MAX_TEXT
    # the schema refuses more than the bound (a gateway that ignored it would be caught)
    message["lanes"]["doors"].append(message["lanes"]["doors"][0])
    assert list(Draft202012Validator(SCHEMA).iter_errors(message))


def test_no_resident_and_no_face_figures_leave_the_building() -> None:
    """An entrance's summary carries counts and outcomes: the lane's per-reason counts and timings
    stay on site, and nothing else of the face lane's report is copied across."""
    got = rp.to_json(summarise(lanes(), {}))
    assert set(got["face_entrances"][0]) == {
        "id", "camera", "door", "camera_online", "locked", "granted", "denied",
        "last_decision_ms", "last_granted", "last_reason",
    }  # fmt: skip
    assert "threshold" not in json.dumps(got) and "denied_reasons" not in json.dumps(got)


def test_a_lane_report_of_another_version_reads_as_empty_fields_not_an_error() -> None:
    odd = {"doors": {"doors": [{"id": "lobby", "pulses": "many"}, "junk"]}, "care": {"households": None}}
    got = rp.to_json(summarise(odd, {}))
    assert got["doors"] == [{"id": "lobby", "relay": "unknown", "pulses": 0, "failures": 0, "fault": None}]
    assert got["care"] == []
