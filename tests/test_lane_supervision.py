"""A lane is supervised like a source: its crash restarts it, past the budget it is parked, and the
rest of the gateway (sources, outbox) keeps running; a lane that cannot start is `unavailable`
with its reason, once, and a configured lane that is absent from the config costs nothing."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.config import lane_registry, parse_config
from gateway.config.loader import LoadedConfig
from gateway.lanes import Lane, LaneDeps
from gateway.runtime.daemon import Daemon
from tests.conftest import gateway_toml
from tests.support.configs import door_toml, meter_bus_toml

RULE = '\n[[rules]]\nid = "hot"\ntype = "threshold"\nsource = "sim"\npoint = "power_w"\nabove = 1e9\n'


@dataclass(frozen=True, slots=True)
class Nothing:
    """The report of a component with nothing to say."""


class Crashing:
    """A lane component whose work fails every time (a bug, or a disk that keeps failing)."""

    name = "rules"

    async def start(self) -> None:
        pass

    async def run(self) -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("state write failed")

    async def stop(self) -> None:
        pass

    def report(self) -> Nothing:
        return Nothing()


class NeverStarts(Crashing):
    async def start(self) -> None:
        raise OSError("model file missing")


def build_crashing(_config: Any, _deps: LaneDeps) -> Lane:
    return Lane("rules", [Crashing()])


def build_never_starts(_config: Any, _deps: LaneDeps) -> Lane:
    return Lane("rules", [NeverStarts()])


def daemon_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, builder: str) -> Daemon:
    specs = tuple(
        lane_registry.LaneSpec(s.name, s.section, f"tests.test_lane_supervision:{builder}")
        if s.name == "rules"
        else s
        for s in lane_registry.LANES
    )
    monkeypatch.setattr(lane_registry, "LANES", specs)
    text = gateway_toml(
        tmp_path / "state",
        sources='[[sources]]\nid = "sim"\ntype = "simulated"\ninterval_s = 0.02\n',
        runtime={"restart_budget": 3, "restart_initial_s": 0.01, "restart_max_s": 0.02},
    )
    parsed = parse_config((text + RULE).encode(), "t.toml", tmp_path)
    return Daemon(LoadedConfig(parsed.config, None, tmp_path, parsed.sha256))


def run_until(daemon: Daemon, done: Any) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        runner = asyncio.create_task(daemon.run())
        while not done(daemon):
            assert not runner.done(), "the daemon stopped"
            await asyncio.sleep(0.02)
        status = daemon.status_body()
        daemon.request_stop()
        await runner
        return status

    return asyncio.run(asyncio.wait_for(main(), 60))


def test_a_crashing_lane_is_parked_and_the_gateway_keeps_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = daemon_with(tmp_path, monkeypatch, "build_crashing")
    parked = lambda d: d.health["lane:rules"].state == "failed" if "lane:rules" in d.health else False  # noqa: E731
    status = run_until(daemon, parked)
    accepted_when_parked = status["pipeline"]["accepted"]
    states = {c["name"]: c for c in status["components"]}
    assert (
        states["lane:rules"]["state"] == "failed"
        and "state write failed" in states["lane:rules"]["last_error"]
    )
    assert states["lane:rules"]["restarts"] == 3  # restarted within the budget (3), then parked
    assert states["source:sim"]["state"] == "running" and states["outbox"]["state"] == "running"
    assert accepted_when_parked > 0

    # and the sources go on after it was parked
    daemon2 = daemon_with(tmp_path / "again", monkeypatch, "build_crashing")
    status2 = run_until(
        daemon2,
        lambda d: (
            "lane:rules" in d.health
            and d.health["lane:rules"].state == "failed"
            and d.core.pipeline.accepted > 200
        ),
    )
    assert status2["pipeline"]["accepted"] > 200


def test_a_lane_that_cannot_start_is_unavailable_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = daemon_with(tmp_path, monkeypatch, "build_never_starts")
    with caplog.at_level(logging.INFO):
        status = run_until(daemon, lambda d: d.core.pipeline.accepted > 20)
    assert status["unavailable"] == {"rules": "model file missing"}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["rules is not running: model file missing"]


def test_a_gateway_without_lanes_logs_no_error_and_builds_no_lane(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = gateway_toml(tmp_path / "state", sources='[[sources]]\nid = "sim"\ntype = "simulated"\n')
    parsed = parse_config(text.encode(), "t.toml", tmp_path)
    daemon = Daemon(LoadedConfig(parsed.config, None, tmp_path, parsed.sha256))
    with caplog.at_level(logging.INFO):
        status = run_until(daemon, lambda d: d.core.pipeline.accepted > 5)
    assert status["lanes"] == {} and status["unavailable"] == {}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_doors_that_cannot_start_are_unavailable_and_no_lane_gets_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.lanes.doors.lane import Doors

    async def broken(_self: Doors) -> None:
        raise RuntimeError("relay board driver bug")

    monkeypatch.setattr(Doors, "start", broken)
    sources = '[[sources]]\nid = "sim"\ntype = "simulated"\ninterval_s = 0.02\n' + meter_bus_toml(1)
    text = gateway_toml(tmp_path / "state", sources=sources + door_toml())
    parsed = parse_config(text.encode(), "t.toml", tmp_path)
    daemon = Daemon(LoadedConfig(parsed.config, None, tmp_path, parsed.sha256))
    status = run_until(daemon, lambda d: d.core.pipeline.accepted > 5)
    assert status["unavailable"] == {"doors": "relay board driver bug"}
    assert daemon.lanes.doors is None and daemon.lanes.deps.doors is None  # face access: "not running"


class HangsAtStop(Crashing):
    """A lane component whose stop never returns (a bug): the runtime cuts it at its share."""

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        await asyncio.Event().wait()


def build_hangs_at_stop(_config: Any, _deps: LaneDeps) -> Lane:
    return Lane("rules", [HangsAtStop()])


def test_the_doors_stop_beside_the_lanes_and_leave_them_the_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The lanes stage (30 % of shutdown_timeout_s: 3 s) goes to the other lanes, shared among
    those still to stop; the doors, whose relay cannot be reached, retry beside them for their own
    whole budget and say the relay's state themselves. Before, the doors and the lane each had
    1.5 s, one after the other."""
    specs = tuple(
        lane_registry.LaneSpec(s.name, s.section, "tests.test_lane_supervision:build_hangs_at_stop")
        if s.name == "rules"
        else s
        for s in lane_registry.LANES
    )
    monkeypatch.setattr(lane_registry, "LANES", specs)
    sources = '[[sources]]\nid = "sim"\ntype = "simulated"\ninterval_s = 0.02\n' + meter_bus_toml(1)
    text = gateway_toml(tmp_path / "state", sources=sources + door_toml() + RULE)  # bus-1: refused
    parsed = parse_config(text.encode(), "t.toml", tmp_path)
    daemon = Daemon(LoadedConfig(parsed.config, None, tmp_path, parsed.sha256))
    with caplog.at_level(logging.INFO):
        run_until(daemon, lambda d: d.core.pipeline.accepted > 5)
    said = [r.getMessage() for r in caplog.records]
    assert "rules did not stop within 3.0 s: cut short" in said, said
    assert not [m for m in said if m.startswith("doors did not stop")], said
    assert [m for m in said if m.startswith("door lobby: relay state unknown at stop")], said
