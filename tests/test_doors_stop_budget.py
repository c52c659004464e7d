"""The doors' switch-off at stop gets its whole budget, however many lanes the building runs.

A real `lintel run` with three lane components (doors, care, rules) and a pymodbus relay module
whose TCP gateway answers "target device failed to respond" (Modbus exception 11) for the first
~2 s of the stop: the doors keep retrying the switch-off beside the other lanes' stops and the coil
ends off at the board, with no "did not stop" line for the doors. Before, the lanes stage split its
3 s among the three components (1.5 s each at least) and cut the doors' retries short at 1.5 s.
"""

from __future__ import annotations

import json
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.constants import ExcCodes

from drivers.modbus.simulator import SimulatedMeter, SimulatedRelayModule
from gateway.config import parse_config
from gateway.core.errors import ConfigError
from gateway.runtime.control import send_local
from tests.conftest import gateway_toml
from tests.support.configs import door_toml, meter_bus_toml, threshold_rule_toml
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel
from tests.support.waiting import wait_for

COIL = 0
UNANSWERED_S = 2.0  # the relay's bus answers again this long after the stop began

CARE = """
[care]
[[care.households]]
id = "flat-1a"
electricity_meter = "m1"
"""


class SilentRelayModule(SimulatedRelayModule):
    """A relay module behind a Modbus TCP gateway whose serial side stops answering until
    `silent_until` (time.monotonic()): the gateway says so with exception 11 to every write."""

    silent_until = 0.0

    async def _action(
        self, function: int, start: int, address: int, count: int, registers: list[int], set_values: object
    ) -> ExcCodes | None:
        if function in (5, 15) and time.monotonic() < self.silent_until:
            return ExcCodes.GATEWAY_NO_RESPONSE
        return await super()._action(function, start, address, count, registers, set_values)


@pytest.fixture
def relay() -> Iterator[tuple[SilentRelayModule, int]]:
    board = SilentRelayModule(unit=9)
    server = ModbusThread([SimulatedMeter(unit=1, profile="eastron_sdm120"), board]).start()
    try:
        yield board, server.port
    finally:
        server.stop()


def door_state(state: Path) -> str | None:
    try:
        status = json.loads((state / "run" / "status.json").read_text())
        return str(status["lanes"]["doors"]["doors"][0]["relay"])
    except (OSError, ValueError, KeyError, IndexError):
        return None


def pulse(socket: Path, results: list[dict[str, Any]]) -> None:
    envelope = {
        "schema": "lintel.command/1",
        "id": f"t-{secrets.token_hex(4)}",
        "command": "door_pulse",
        "ts_ms": time.time_ns() // 1_000_000,
        "nonce": secrets.token_hex(8),
        "args": {"door": "lobby"},
    }
    try:
        results.append(send_local(socket, envelope, timeout_s=30))
    except (OSError, ValueError) as exc:
        results.append({"outcome": "no answer", "reason": str(exc)})


def test_the_doors_switch_off_at_stop_is_not_starved_by_other_lanes(
    tmp_path: Path, relay: tuple[SilentRelayModule, int]
) -> None:
    board, port = relay
    state = tmp_path / "state"
    sources = (
        meter_bus_toml(port, interval_s=1)
        + door_toml(coil=COIL, pulse_s=20, timeout_ms=300)
        + threshold_rule_toml("m1", above=1e9)
        + CARE
    )
    config = tmp_path / "lintel.toml"
    runtime = {"status_interval_s": 0.2, "shutdown_timeout_s": 10}
    config.write_text(gateway_toml(state, sources=sources, runtime=runtime))
    proc = lintel("run", "-c", str(config))
    try:
        wait_for(lambda: door_state(state) == "released", 30, "the door to report its relay released")
        status = json.loads((state / "run" / "status.json").read_text())
        assert {"doors", "care", "rules"} <= set(status["lanes"]), status["lanes"]
        results: list[dict[str, Any]] = []
        thread = threading.Thread(target=pulse, args=(state / "run" / "control.sock", results))
        thread.start()
        wait_for(lambda: board.states()[COIL] or bool(results), 10, "the pulse")
        assert board.states()[COIL] is True, results
        board.silent_until = time.monotonic() + UNANSWERED_S  # the relay's bus goes quiet ...
        proc.send_signal(signal.SIGTERM)  # ... as the gateway is told to stop, mid-pulse
        _, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    thread.join(10)
    log = err.decode()
    assert proc.returncode == 0, log
    assert board.states()[COIL] is False, log  # released at the board: the door is shut
    off = [t for t, coil, on in board.switches if coil == COIL and not on]
    assert off and off[-1] >= board.silent_until, log  # by a retry after the bus answered again
    assert not [line for line in log.splitlines() if "did not stop" in line], log
    assert results and results[0]["outcome"] == "failed" and "stopping" in results[0]["reason"], results
    # The cut pulse's answer says what was known then: its own switch-off had not reached the relay.
    assert "relay not released yet (the switch-off is being retried)" in results[0]["reason"], results
    assert "relay released" not in results[0]["reason"], results


def test_a_shutdown_budget_too_short_for_the_doors_switch_off_is_refused(tmp_path: Path) -> None:
    """The doors' stop is never cut short, so a total that cannot hold it (and the stages after
    it) is a config error naming the key, the value and the fix; without doors it is fine."""
    state = tmp_path / "state"
    doors = meter_bus_toml(1502) + door_toml()
    with pytest.raises(ConfigError) as info:
        parse_config(gateway_toml(state, sources=doors, runtime={"shutdown_timeout_s": 5}).encode(), "t.toml")
    assert [str(p) for p in info.value.problems] == [
        "runtime.shutdown_timeout_s: too short for the doors' switch-off at stop (got 5); expected at "
        "least 6 where [[doors]] are configured (a relay gets up to 3 s to switch off, the rest of the "
        "stop as much again), e.g. the default 10"
    ]
    assert parse_config(gateway_toml(state, sources=doors, runtime={"shutdown_timeout_s": 6}).encode(), "t")
    no_doors = gateway_toml(state, sources=meter_bus_toml(1502), runtime={"shutdown_timeout_s": 1})
    assert parse_config(no_doors.encode(), "t.toml")
