"""Typed reports: the published `stats` schema is generated from the types and cannot drift, a
stats body the daemon builds validates against it (closed objects: a renamed counter fails), and
status.json reads back into its types."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from gateway.config import parse_config
from gateway.config.loader import LoadedConfig
from gateway.runtime import report as rp
from gateway.runtime.daemon import Daemon
from tests.conftest import gateway_toml

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "schema" / "v1" / "stats.json"


def test_the_published_stats_schema_is_the_generated_one() -> None:
    published = json.loads(SCHEMA.read_text())
    assert published == rp.stats_schema(), (
        "docs/schema/v1/stats.json drifted from gateway.runtime.report.StatsReport: "
        "regenerate it with `python -m gateway.runtime.report > docs/schema/v1/stats.json`"
    )


def daemon_for(tmp_path: Path) -> Daemon:
    text = gateway_toml(
        tmp_path / "state",
        sources='[[sources]]\nid = "sim"\ntype = "simulated"\ninterval_s = 0.05\n',
    )
    parsed = parse_config(text.encode(), "test.toml", tmp_path)
    return Daemon(LoadedConfig(parsed.config, None, tmp_path, parsed.sha256))


def test_a_stats_body_from_a_running_daemon_validates_and_a_renamed_counter_does_not(tmp_path: Path) -> None:
    daemon = daemon_for(tmp_path)

    async def run() -> dict[str, object]:
        runner = asyncio.create_task(daemon.run())
        while daemon.state != "running" or daemon.core.pipeline.accepted < 20:
            await asyncio.sleep(0.02)
        book, now = daemon.core.book, daemon.clock.time_ms()
        book.open("care:flat-1", "inactivity", "flat-1", now, {})
        book.open("lane:n", "fire_lane_blocked", "lane-n", now, {})
        book.open("lane:s", "fire_lane_blocked", "lane-s", now, {})
        book.ack(book.listing(now)[0].alarm_id, now, "ops-1", "test")
        body = rp.to_json(daemon.report().stats())
        daemon.request_stop()
        await runner
        return body

    body = asyncio.run(asyncio.wait_for(run(), 60))
    message = {"schema": "lintel.stats/1", "gateway_id": "gw-test", "seq": 7, "ts_ms": 1, **body}
    validator = Draft202012Validator(json.loads(SCHEMA.read_text()))
    assert not list(validator.iter_errors(message))
    assert {c["name"] for c in message["components"]} >= {"outbox", "source:sim"}  # type: ignore[union-attr]
    # a dashboard reading only stats sees what is open, and nothing that names a flat or a device
    assert message["open_alarms"] == {
        "count": 3,
        "unacknowledged": 2,
        "by_kind": {"fire_lane_blocked": 2, "inactivity": 1},
    }
    assert "flat-1" not in json.dumps(message["open_alarms"])
    renamed = json.loads(json.dumps(message))
    renamed["outbox"]["accepted"] = renamed["outbox"].pop("accepted_records")
    assert list(validator.iter_errors(renamed)), "an internal rename must break the published schema"


def test_status_json_reads_back_into_its_types(tmp_path: Path) -> None:
    daemon = daemon_for(tmp_path)
    body = daemon.status_body()
    back = rp.read_report(json.loads(json.dumps(body)))
    assert back.outbox.rows.alarm == 0 and back.state == "starting"
    with pytest.raises(Exception):  # noqa: B017 - pydantic's ValidationError
        rp.read_report({**body, "outbox": {"rows": {}}})


def test_the_encoded_status_is_what_dataclasses_asdict_gives_a_json_encoder(tmp_path: Path) -> None:
    """status.json is encoded once from the report (no asdict deep copy, no indented encoder): the
    JSON must stay exactly what the earlier asdict-based body was, for a running daemon's report."""
    daemon = daemon_for(tmp_path)

    async def run() -> rp.GatewayReport:
        runner = asyncio.create_task(daemon.run())
        while daemon.state != "running" or daemon.core.pipeline.accepted < 20:
            await asyncio.sleep(0.02)
        report = daemon.report()
        daemon.request_stop()
        await runner
        return report

    report = asyncio.run(asyncio.wait_for(run(), 60))
    assert json.loads(rp.encode(report)) == json.loads(json.dumps(dataclasses.asdict(report), default=str))
    assert report.devices and report.components  # a report with something in it
