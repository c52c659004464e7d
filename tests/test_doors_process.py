"""Doors fail safe, for real: `lintel run`, a pymodbus relay module, mosquitto.

Each clause of the README's doors contract is driven through a real process during a 2 s pulse:
SIGTERM, a reload that restarts the relay's bus, the bus going away and coming back, kill -9 then a
restart, and a relay that cannot be switched off (exactly one `door_relay_fault` upstream).
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
from jsonschema import Draft202012Validator

from drivers.modbus.simulator import SimulatedMeter, SimulatedRelayModule
from gateway.runtime.control import send_local
from tests.conftest import gateway_toml
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.configs import door_toml, meter_bus_toml, mqtt_toml
from tests.support.modbus_thread import ModbusThread
from tests.support.outbox_db import accepted_seq
from tests.support.process import lintel, stop_and_show_log
from tests.support.waiting import wait_for

STATS_SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "schema" / "v1" / "stats.json"

PULSE_S = 2.0
MARGIN_S = 1.0  # the bound: OFF within pulse_s + 1 s
COIL = 0


def config_text(
    tmp_path: Path,
    broker: int,
    modbus: int,
    interval_s: float = 1,
    pulse_s: float = PULSE_S,
    mqtt: str = "",
    shutdown_timeout_s: float = 10,
) -> str:
    sources = meter_bus_toml(modbus, interval_s=interval_s) + door_toml(
        coil=COIL, pulse_s=pulse_s, timeout_ms=300
    )
    runtime = {"status_interval_s": 0.2, "shutdown_timeout_s": shutdown_timeout_s}
    return gateway_toml(tmp_path / "state", mqtt=mqtt_toml(broker, mqtt), sources=sources, runtime=runtime)


class Rig:
    def __init__(self, tmp_path: Path, broker: Mosquitto) -> None:
        self.tmp_path = tmp_path
        self.broker = broker
        self.relay = SimulatedRelayModule(unit=9)
        self.modbus = ModbusThread([SimulatedMeter(unit=1, profile="eastron_sdm120"), self.relay]).start()
        self.config = tmp_path / "lintel.toml"
        self.config.write_text(config_text(tmp_path, broker.port, self.modbus.port))
        self.socket = tmp_path / "state" / "run" / "control.sock"
        self.proc: Any = None

    def start(self) -> None:
        self.proc = lintel("run", "-c", str(self.config))
        seen = len(self.coil())
        # the start-up switch-off (clause 2), then the door reported released: ready to pulse
        wait_for(lambda: len(self.coil()) > seen and self.coil()[-1][1] is False, 30, "start-up switch-off")
        wait_for(lambda: self.door_state() == "released", 10, "the door to report its relay released")

    def door_state(self) -> str | None:
        try:
            status = json.loads((self.tmp_path / "state" / "run" / "status.json").read_text())
            return str(status["lanes"]["doors"]["doors"][0]["relay"])
        except (OSError, ValueError, KeyError):
            return None

    def coil(self) -> list[tuple[float, bool]]:
        return [(t, on) for t, coil, on in list(self.relay.switches) if coil == COIL]

    def command(self, name: str, args: dict[str, Any], timeout_s: float = 15) -> dict[str, Any]:
        envelope = {
            "schema": "lintel.command/1",
            "id": f"t-{secrets.token_hex(4)}",
            "command": name,
            "ts_ms": time.time_ns() // 1_000_000,
            "nonce": secrets.token_hex(8),
            "args": args,
        }
        return send_local(self.socket, envelope, timeout_s=timeout_s)

    def pulse_in_background(self) -> tuple[threading.Thread, list[dict[str, Any]], float]:
        """Start a door_pulse; returns when the coil is on, with the time it went on."""
        results: list[dict[str, Any]] = []
        before = len(self.coil())

        def pulse() -> None:
            try:
                results.append(self.command("door_pulse", {"door": "lobby"}))
            except (OSError, ValueError) as exc:  # the gateway was killed mid-pulse: no answer
                results.append({"outcome": "no answer", "reason": str(exc)})

        thread = threading.Thread(target=pulse)
        thread.start()
        wait_for(lambda: any(on for _, on in self.coil()[before:]) or bool(results), 10, "the pulse")
        assert any(on for _, on in self.coil()[before:]), results
        on_at = next(t for t, on in self.coil()[before:] if on)
        return thread, results, on_at

    def off_after(self, on_at: float, deadline_s: float) -> float:
        """Wait until the coil is off after `on_at`; returns how long after `on_at` it went off."""
        wait_for(lambda: any(t >= on_at and not on for t, on in self.coil()), deadline_s + 5, "switch-off")
        off_at = next(t for t, on in self.coil() if t >= on_at and not on)
        assert self.relay.states()[COIL] is False
        return off_at - on_at

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.modbus.stop()


@pytest.fixture
def rig(tmp_path: Path, broker: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, broker)
    try:
        yield r
    finally:
        r.close()


def faults(collector: Collector) -> list[dict[str, Any]]:
    return [m.payload for m in collector.data() if m.topic.endswith("/lobby/door_relay_fault")]


def test_sigterm_during_a_pulse_releases_the_relay_before_the_bus_stops(rig: Rig) -> None:
    rig.start()
    thread, results, on_at = rig.pulse_in_background()
    time.sleep(0.5)
    rig.proc.send_signal(signal.SIGTERM)
    assert rig.proc.wait(20) == 0, stop_and_show_log(rig.proc)
    assert rig.off_after(on_at, PULSE_S + MARGIN_S) <= PULSE_S + MARGIN_S
    thread.join(10)
    assert results and results[0]["outcome"] == "failed"
    assert "stopping" in results[0]["reason"]


def test_reload_restarting_the_bus_during_a_pulse_releases_the_relay(rig: Rig, collector: Collector) -> None:
    rig.start()
    thread, results, on_at = rig.pulse_in_background()
    time.sleep(0.3)
    # The installer changes the bus in the local file and reloads (systemctl reload: SIGHUP).
    rig.config.write_text(config_text(rig.tmp_path, rig.broker.port, rig.modbus.port, interval_s=0.5))
    rig.proc.send_signal(signal.SIGHUP)
    assert rig.off_after(on_at, PULSE_S + MARGIN_S) <= PULSE_S + MARGIN_S
    thread.join(10)
    assert results[0]["outcome"] == "failed" and "reload" in results[0]["reason"], results
    assert collector.wait_for(lambda c: any(m.topic.endswith("/config_reloaded") for m in c.data()), 10)
    reloaded = [m.payload for m in collector.data() if m.topic.endswith("/config_reloaded")]
    assert reloaded[0]["attrs"]["sources_restarted"] == ["bus-1"]
    # the door works on the new bus instance once it has connected
    answers = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (answers and answers[-1]["outcome"] == "ok"):
        answers.append(rig.command("door_pulse", {"door": "lobby", "pulse_s": 0.5}))
        time.sleep(0.2)
    assert answers[-1]["outcome"] == "ok", answers
    assert rig.coil()[-1][1] is False


def test_bus_lost_and_back_during_a_pulse_the_switch_off_reaches_the_new_connection(rig: Rig) -> None:
    rig.start()
    thread, _, on_at = rig.pulse_in_background()
    rig.modbus.pause()  # the relay module's TCP gateway reboots mid-pulse
    time.sleep(0.5)
    rig.modbus.resume()
    assert rig.off_after(on_at, PULSE_S + MARGIN_S) <= PULSE_S + MARGIN_S
    thread.join(10)


def test_kill_9_during_a_pulse_then_restart_switches_the_relay_off_first(rig: Rig) -> None:
    rig.start()
    rig.pulse_in_background()
    rig.proc.send_signal(signal.SIGKILL)
    rig.proc.wait(10)
    time.sleep(0.2)
    assert rig.relay.states()[COIL] is True  # a plain coil cannot time itself: still energised
    restarted = time.monotonic()
    rig.start()  # waits for the start-up switch-off
    off = [t for t, on in rig.coil() if t >= restarted]
    assert off and off[0] - restarted < 15
    assert rig.relay.states()[COIL] is False


def test_relay_that_cannot_be_switched_off_gives_exactly_one_fault(rig: Rig, collector: Collector) -> None:
    rig.start()
    thread, results, _ = rig.pulse_in_background()
    rig.modbus.pause()  # gone for good: the switch-off cannot succeed
    assert collector.wait_for(lambda c: bool(faults(c)), 20), "no door_relay_fault reached the broker"
    rig.proc.send_signal(signal.SIGTERM)
    assert rig.proc.wait(30) == 0, stop_and_show_log(rig.proc)
    time.sleep(1.0)
    got = faults(collector)
    assert len(got) == 1, got
    assert got[0]["severity"] == "alarm" and got[0]["attrs"]["door"] == "lobby"
    assert got[0]["attrs"]["relay_state"] == "energised", got  # switched on here, not released
    thread.join(10)
    assert results[0]["outcome"] == "failed"


def test_fault_raised_during_shutdown_still_reaches_the_broker(rig: Rig, collector: Collector) -> None:
    rig.start()
    rig.pulse_in_background()
    rig.modbus.pause()
    rig.proc.send_signal(signal.SIGTERM)  # before the fault's grace has passed
    assert rig.proc.wait(30) == 0, stop_and_show_log(rig.proc)
    assert collector.wait_for(lambda c: len(faults(c)) == 1, 10), "the fault was lost at shutdown"


def test_a_relay_whose_bus_never_came_up_raises_no_stuck_relay_fault_at_stop(
    rig: Rig, collector: Collector
) -> None:
    """A relay this gateway never switched on is not "stuck on" when its bus never came up: the
    stop still tries to switch it off (and says the state is unknown), but raises no alarm."""
    rig.modbus.pause()  # the relay module's TCP gateway is not on the network from the start
    # a shutdown budget that lets the doors' stop use all of its own (3 s) rather than be cut short
    rig.config.write_text(config_text(rig.tmp_path, rig.broker.port, rig.modbus.port, shutdown_timeout_s=20))
    rig.proc = lintel("run", "-c", str(rig.config))
    wait_for(lambda: rig.door_state() == "unknown", 30, "the door to report its relay state unknown")
    rig.proc.send_signal(signal.SIGTERM)
    _, err = rig.proc.communicate(timeout=30)
    log = err.decode()
    assert rig.proc.returncode == 0, log
    accepted = accepted_seq(rig.tmp_path / "state" / "outbox.db")
    assert collector.wait_for(lambda c: set(range(1, accepted + 1)) <= c.seqs(), 20), "records lost at stop"
    assert faults(collector) == [], log
    assert "stuck on" not in log, log
    unknown = [line for line in log.splitlines() if "lobby" in line and "state unknown" in line]
    assert unknown and " WARNING " in unknown[-1], log


def test_stats_report_the_door_relay_as_the_gateway_drives_it(rig: Rig, collector: Collector) -> None:
    """The fleet sees a door's relay energised during a pulse and released after it, from the
    `lanes` section of `stats`; every stats message validates against the published schema."""
    pulse_s = 6.0  # long enough for stats every 0.5 s to catch it on a loaded machine
    text = config_text(
        rig.tmp_path, rig.broker.port, rig.modbus.port, pulse_s=pulse_s, mqtt="stats_interval_s = 0.5\n"
    )
    rig.config.write_text(text)
    validator = Draft202012Validator(json.loads(STATS_SCHEMA.read_text()))

    def door_in_stats(since: int = 0) -> list[dict[str, Any]]:
        stats = [m.payload for m in collector.data() if m.topic.endswith("/stats")][since:]
        for body in stats:
            assert not list(validator.iter_errors(body)), body
        return [
            d for body in stats for d in (body.get("lanes") or {}).get("doors") or () if d["id"] == "lobby"
        ]

    rig.start()
    wait_for(lambda: any(d["relay"] == "released" for d in door_in_stats()), 30, "stats: released")
    seen = len([m for m in collector.data() if m.topic.endswith("/stats")])
    thread, results, on_at = rig.pulse_in_background()
    wait_for(lambda: any(d["relay"] == "energised" for d in door_in_stats(seen)), pulse_s, "stats: energised")
    assert rig.relay.states()[COIL] is True  # the report was not ahead of the relay
    rig.off_after(on_at, pulse_s + MARGIN_S)
    thread.join(10)
    assert results and results[0]["outcome"] == "ok", results
    wait_for(
        lambda: any(d["relay"] == "released" and d["pulses"] == 1 for d in door_in_stats(seen)),
        10,
        "stats: released after the pulse",
    )
    stop_and_show_log(rig.proc)
