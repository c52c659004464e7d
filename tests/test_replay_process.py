"""Issue 27 point 1 against a real `lintel run`, mosquitto and a pymodbus relay module, with the
daemon's wall clock really moved: libfaketime (Debian `faketime`, installed by setup.sh --test)
shifts the daemon's CLOCK_REALTIME by the offset in a file it re-reads on every call; monotonic time
is left alone, as when NTP or an RTC-less boot sets the clock. The operator's commands are dated by
the operator's clock, which agrees with the daemon's shifted one (the attacker moved the gateway's).

A captured, signed door_pulse whose nonce a later command retired must not open the door after a
restart with the clock set back; commands are refused `clock_behind` while the clock is behind the
mark, and served again once it is not."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.modbus.simulator import SimulatedMeter, SimulatedRelayModule
from gateway.commands.signing import sign
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.commander import OPERATOR_ID, OPERATOR_KEY, Commander, envelope
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel, stop_and_show_log
from tests.test_attacker import LOBBY_COIL, config_text

FAKETIME_LIB = Path(f"/usr/lib/{platform.machine()}-linux-gnu/faketime/libfaketime.so.1")


class Gateway:
    """`lintel run` under libfaketime, restartable, with its clock offset set through a file."""

    def __init__(self, tmp_path: Path, broker: Mosquitto, relay: SimulatedRelayModule, modbus: int) -> None:
        assert FAKETIME_LIB.exists(), (
            "libfaketime missing: scripts/setup.sh --test installs Debian's faketime"
        )
        self.config = tmp_path / "lintel.toml"
        self.config.write_text(config_text(tmp_path, broker.port, modbus))
        self.offset_file = tmp_path / "faketime.offset"
        self.offset_s = 0
        self.relay = relay
        self.collector = Collector(broker.port, topic="lintel/#").start()
        self.commander = Commander(broker.port)
        self.proc: Any = None

    def set_offset(self, seconds: int) -> None:
        self.offset_s = seconds
        self.offset_file.write_text(f"{seconds:+d}\n")

    def start(self) -> None:
        births = self._births()
        self.proc = lintel(
            "run",
            "-c",
            str(self.config),
            env={
                "LD_PRELOAD": str(FAKETIME_LIB),
                "FAKETIME_TIMESTAMP_FILE": str(self.offset_file),
                "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            },
        )
        assert self.collector.wait_for(lambda _c: self._births() > births, 30), "no birth"
        # The SUBACK of the command topic follows the birth: a ping answered (ok, or refused while
        # the clock is behind) means it is there.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            ping = self.envelope("ping")
            self.commander.send(ping)
            try:
                self.commander.result_for(ping["id"], timeout=1)
                return
            except TimeoutError:
                continue
        raise AssertionError("the gateway never answered a ping")

    def wait_doors_released(self) -> None:
        """The doors lane switched its relays off at start (a pulse before that is refused)."""
        status = self.config.parent / "state" / "run" / "status.json"  # read directly: the CLI would
        deadline = time.monotonic() + 20  # judge the file's age by the test's clock, not the daemon's
        while time.monotonic() < deadline:
            try:
                doors = json.loads(status.read_text())["lanes"]["doors"]["doors"]
                if doors and all(d["relay"] == "released" for d in doors):
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise AssertionError("the doors never reported their relays released")

    def stop(self) -> None:
        if self.proc is not None:
            stop_and_show_log(self.proc)
            self.proc = None

    def _births(self) -> int:
        return sum(1 for m in self.collector.snapshot() if m.topic.endswith("/birth"))

    def envelope(self, command: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Dated by the operator's clock, which agrees with the gateway's (shifted) one."""
        return envelope(command, args, ts_ms=time.time_ns() // 1_000_000 + self.offset_s * 1000)

    def replay(self, captured: bytes, before: int) -> dict[str, Any]:
        """Publish the captured bytes again and wait for their `before + 1`-th result."""
        cid = json.loads(captured)["id"]
        self.commander.send_raw(captured)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = [r for r in self.commander.results if r.get("correlation_id") == cid]
            if len(found) > before:
                return found[before]
            time.sleep(0.02)
        raise TimeoutError(f"no result {before + 1} for {cid}")

    def pulses(self) -> int:
        return sum(1 for _, coil, on in self.relay.switches if coil == LOBBY_COIL and on)


@pytest.fixture
def gateway(tmp_path: Path, broker: Mosquitto) -> Iterator[Gateway]:
    relay = SimulatedRelayModule(9)
    modbus = ModbusThread([SimulatedMeter(1, "eastron_sdm120"), relay]).start()
    gw = Gateway(tmp_path, broker, relay, modbus.port)
    gw.set_offset(0)
    try:
        yield gw
    finally:
        gw.stop()
        gw.commander.close()
        gw.collector.stop()
        modbus.stop()


def test_a_captured_door_pulse_is_refused_after_a_clock_reset_and_restart(gateway: Gateway) -> None:
    gw = gateway
    gw.start()
    gw.wait_doors_released()
    # What an attacker on the broker records: the operator's signed bytes.
    captured = json.dumps(
        sign(gw.envelope("door_pulse", {"door": "lobby"}), OPERATOR_KEY, OPERATOR_ID)
    ).encode()
    assert gw.replay(captured, 0)["outcome"] == "ok"
    assert _wait(lambda: gw.pulses() == 1)

    gw.set_offset(405)  # 405 s later: the capture is expired, and a later command retires its nonce
    assert gw.replay(captured, 1)["code"] == "expired"
    later = gw.envelope("ping")
    assert gw.commander.call(later)["outcome"] == "ok"
    gw.stop()

    gw.set_offset(60)  # restarted with the clock at t0 + 60 s (fake-hwclock, a spoofed NTP answer)
    gw.start()
    replay = gw.replay(captured, 2)
    assert replay["outcome"] == "rejected" and replay["code"] == "clock_behind", replay
    fresh = gw.envelope("door_pulse", {"door": "lobby"})
    result = gw.commander.call(fresh)
    assert result["code"] == "clock_behind", result  # refused while behind, however fresh it looks
    assert gw.pulses() == 1

    gw.wait_doors_released()
    gw.set_offset(400)  # the clock caught up (within max_skew_s of the mark): served again
    again = gw.envelope("door_pulse", {"door": "lobby"})
    assert gw.commander.call(again)["outcome"] == "ok"
    assert _wait(lambda: gw.pulses() == 2)
    assert gw.replay(captured, 3)["code"] == "expired"  # and the capture stays dead
    assert gw.pulses() == 2


def _wait(predicate: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
