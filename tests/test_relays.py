"""Door relays that time their own pulse (fail-safe clause 5): a Shelly Gen2 relay against our
simulator of its HTTP RPC, a Modbus relay board's "flash" against the pymodbus relay simulator, and
the Doors component driving a hardware-timed relay."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from drivers.modbus.bus import Bus, RequestFailed
from drivers.modbus.endpoint import parse_endpoint
from drivers.modbus.simulator import MeterServer, SimulatedRelayModule
from drivers.shelly.simulator import SimulatedShelly
from gateway.config.loader import ConfigError, load_config, parse_config
from gateway.core import Event, Record, SystemClock
from gateway.core.actuators import ActuatorHub
from gateway.lanes import DoorError
from gateway.lanes.doors import DoorConfig, Doors
from gateway.lanes.doors.config import ModbusCoilRelay, ShellyGen2Relay
from gateway.lanes.doors.relays import Relay, RelayError
from gateway.lanes.doors.shelly import ShellyRelay
from gateway.lanes.doors.wiring import build_relay
from tests.conftest import ROOT, gateway_toml
from tests.support.modbus_thread import ModbusThread
from tests.support.serial_line import PacedLine

PASSWORD = "door-s3cret"
TOLERANCE_S = 0.15  # timer accuracy asked of both simulators' flip-back, on a loaded machine


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


SHELLY_ID = "shellypro1-0c8b95f2e1a4"  # the simulator's default device id
PINNED = {"password_file": "shelly.pass", "device_id": SHELLY_ID}  # what check-config requires


def shelly_config(url: str, **keys: Any) -> ShellyGen2Relay:
    return ShellyGen2Relay.model_validate({"type": "shelly_gen2", "url": url, **PINNED, **keys})


def run(test: Callable[..., Coroutine[Any, Any, None]], *args: Any, **kwargs: Any) -> None:
    asyncio.run(test(*args, **kwargs))


async def with_shelly(body: Callable[[SimulatedShelly], Awaitable[None]], **sim: Any) -> None:
    device = SimulatedShelly(**sim)
    await device.start()
    try:
        await body(device)
    finally:
        await device.stop()


async def switched_off_by_itself(device: SimulatedShelly, pulse_s: float) -> None:
    """The device switched on once, then off by its own timer `pulse_s` later (within TOLERANCE_S)."""
    await until(lambda: len(device.switches) == 2)
    (t_on, _, on), (t_off, _, off) = device.switches
    assert (on, off) == (True, False)
    assert abs((t_off - t_on) - pulse_s) <= TOLERANCE_S


# -- Shelly Gen2 ----------------------------------------------------------------------------------


def test_shelly_timed_pulse_is_switched_off_by_the_device() -> None:
    async def body(device: SimulatedShelly) -> None:
        relay = ShellyRelay(shelly_config(device.url))
        assert relay.hardware_timed
        await relay.timed_pulse(0.4)
        assert device.outputs == [True]
        await switched_off_by_itself(device, 0.4)
        assert device.requests == 2  # Switch.Set and its read-back; the device released it by itself

    run(with_shelly, body)


def test_shelly_pulse_ends_when_the_client_task_is_cancelled() -> None:
    async def body(device: SimulatedShelly) -> None:
        device.fault = None
        relay = ShellyRelay(shelly_config(device.url))
        task = asyncio.create_task(relay.timed_pulse(0.3))
        await until(lambda: bool(device.switches))
        task.cancel()  # the gateway dies between the device switching on and its reply
        await asyncio.gather(task, return_exceptions=True)
        await switched_off_by_itself(device, 0.3)

    run(with_shelly, body)


def test_shelly_pulse_ends_when_the_client_process_is_killed() -> None:
    async def body(device: SimulatedShelly) -> None:
        script = (
            "import asyncio, time\n"
            "from gateway.lanes.doors.config import ShellyGen2Relay\n"
            "from gateway.lanes.doors.shelly import ShellyRelay\n"
            f"cfg = ShellyGen2Relay(type='shelly_gen2', url='{device.url}', password_file='p', "
            f"device_id='{SHELLY_ID}')\n"
            "asyncio.run(ShellyRelay(cfg).timed_pulse(0.5))\n"
            "time.sleep(60)\n"  # a gateway that would never switch the door off itself
        )
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=ROOT)
        try:
            await until(lambda: bool(device.switches), timeout_s=30)
            os.kill(proc.pid, signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await switched_off_by_itself(device, 0.5)

    run(with_shelly, body)


def test_shelly_switch_off_cancels_the_device_timer() -> None:
    async def body(device: SimulatedShelly) -> None:
        relay = ShellyRelay(shelly_config(device.url, switch=1))
        await relay.timed_pulse(5)
        assert (await relay.status())["timer_duration"] == 5
        await relay.switch(False)
        status = await relay.status()
        assert status["output"] is False and "timer_duration" not in status
        assert [(s, on) for _, s, on in device.switches] == [(1, True), (1, False)]
        assert device.outputs == [False, False]

    run(with_shelly, body, switches=2)


def test_shelly_digest_authentication() -> None:
    async def body(device: SimulatedShelly) -> None:
        await ShellyRelay(shelly_config(device.url), PASSWORD).timed_pulse(0.2)
        assert device.switches[0][2] is True and device.auth_failures == 0
        await until(lambda: len(device.switches) == 2)

        wrong = ShellyRelay(shelly_config(device.url), "door-s3cre7")
        with pytest.raises(RelayError) as info:
            await wrong.switch(False)
        assert "authentication failed" in str(info.value)
        assert "door-s3cre7" not in str(info.value) and "door-s3cre7" not in repr(wrong)
        assert device.auth_failures == 1

        with pytest.raises(RelayError, match="asks for a password"):
            await ShellyRelay(shelly_config(device.url)).timed_pulse(0.2)
        assert len(device.switches) == 2  # neither the wrong password nor none switched anything

    run(with_shelly, body, password=PASSWORD)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("garbage", "HTTP 200 with no JSON-RPC reply"),
        ("oversize", "over the limit of 16384"),
        ("error", "device error -109: Switch is overheated?[31m, output disabled"),
        ("no_was_on", "Switch.Set reply without was_on"),
        ("silent", "no answer within 200 ms"),
        ("stopped", "cannot connect"),
    ],
)
def test_shelly_bad_device_replies_are_relay_errors(fault: str, message: str) -> None:
    async def body(device: SimulatedShelly) -> None:
        if fault == "stopped":
            await device.stop()
        device.fault = fault
        relay = ShellyRelay(shelly_config(device.url, timeout_ms=200))
        with pytest.raises(RelayError) as info:
            await relay.timed_pulse(0.2)
        assert str(info.value).startswith(f"{device.url}: ") and message in str(info.value)

    run(with_shelly, body)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 10_000, "reply head longer than 8192 bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n{}", "99999999 bytes is over the limit"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n{}", "malformed Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", "malformed chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffff\r\n", "over the limit of 16384"),
        (b"HTTP/1.1 2OO OK\r\n\r\n", "not an HTTP reply"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP reply"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "closed early"),
        (b"HTTP/1.1 200 OK\r\n\r\n" + b"[" * 20_000, "over the limit of 16384"),
        (b'HTTP/1.1 200 OK\r\n\r\n{"id": 999999, "result": {"was_on": false}}', "reply to another request"),
    ],
)
def test_hostile_http_replies_are_bounded_relay_errors(reply: bytes, message: str) -> None:
    async def body() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(RelayError) as info:
                await ShellyRelay(shelly_config(f"http://127.0.0.1:{port}")).switch(False)
            assert message in str(info.value)
        finally:
            server.close()
            await server.wait_closed()

    run(body)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://10.0.0.5", "unsupported URL scheme"),
        ("http://admin:pw@10.0.0.5", "credentials must not be inline in the URL"),
        ("http://10.0.0.5/rpc", "device URL must not have a path or query"),
        ("http://10.0.0.5:99999", "not a valid device URL"),
        ("http://:8080", "device URL has no host"),
        ("10.0.0.5", "unsupported URL scheme"),
    ],
)
def test_shelly_url_is_validated(url: str, problem: str) -> None:
    toml = gateway_toml(
        Path("/tmp"), extra=f'[[doors]]\nid = "d"\n[doors.relay]\ntype = "shelly_gen2"\nurl = "{url}"\n'
    )
    with pytest.raises(ConfigError) as info:
        parse_config(toml.encode())
    assert str(info.value.problems[0]).startswith(f"doors[0].relay.url: {problem}")


def test_door_relay_password_file_is_checked(tmp_path: Path) -> None:
    door = (
        '[[doors]]\nid = "gate"\n[doors.relay]\ntype = "shelly_gen2"\nurl = "http://10.0.0.5:8080"\n'
        f'device_id = "{SHELLY_ID}"\n'
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text(gateway_toml(tmp_path, extra=door + 'password_file = "gate.pass"\n'))
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert [str(p) for p in info.value.problems] == [
        f'doors[0].relay.password_file: file not found (got "{tmp_path / "gate.pass"}"); '
        "expected a readable file holding the relay device's password"
    ]
    (tmp_path / "gate.pass").write_text("\n")
    with pytest.raises(ConfigError, match="password file is empty"):
        load_config(cfg)
    (tmp_path / "gate.pass").write_text(PASSWORD + "\n")
    relay = load_config(cfg).config.doors[0].relay
    assert isinstance(relay, ShellyGen2Relay) and (relay.host, relay.port, relay.switch) == (
        "10.0.0.5",
        8080,
        0,
    )


# -- Modbus relay board: the flash function --------------------------------------------------------


FLASH_RELAY = {"type": "modbus_coil", "bus": "bus-1", "unit": 9, "coil": 3, "flash": {"address_base": 0x0200}}


def with_board(body: Callable[[SimulatedRelayModule, Relay, Bus], Awaitable[None]], **flash: Any) -> None:
    """Run `body` with a relay board on a pymodbus server of its own thread, a bus to it lent
    through a hub, and the flash relay on coil 3 built from FLASH_RELAY (+ `flash` keys)."""
    board = SimulatedRelayModule(9)
    server = ModbusThread([board]).start()
    config = ModbusCoilRelay.model_validate({**FLASH_RELAY, "flash": {"address_base": 0x0200, **flash}})

    async def main() -> None:
        bus = Bus(parse_endpoint(f"tcp://127.0.0.1:{server.port}"))
        hub = ActuatorHub()
        await bus.open()
        hub.attach("bus-1", bus)
        try:
            await body(board, build_relay(config, hub), bus)
        finally:
            bus.close()

    try:
        run(main)
    finally:
        server.stop()


def test_modbus_flash_switches_off_without_another_write() -> None:
    async def body(board: SimulatedRelayModule, relay: Relay, bus: Bus) -> None:
        assert relay.hardware_timed
        await relay.timed_pulse(0.6)  # 6 steps of 100 ms
        assert board.states()[3] is True
        assert await bus.read(9, 1, 3, 1, timeout_s=1) == [True]  # the coil reads on meanwhile
        await until(lambda: len(board.switches) == 2)
        (t_on, coil_on, on), (t_off, coil_off, off) = board.switches
        assert (coil_on, on, coil_off, off) == (3, True, 3, False)
        assert abs((t_off - t_on) - 0.6) <= TOLERANCE_S
        assert bus.stats.requests == 2  # the flash and our read: no switch-off was written
        assert await bus.read(9, 1, 3, 1, timeout_s=1) == [False]
        await relay.switch(True)  # plain writes still work beside the flash function
        await relay.switch(False)
        assert [on for _, _, on in board.switches[2:]] == [True, False]

    with_board(body)


def test_modbus_flash_value_is_clamped_and_refused_values_fail() -> None:
    async def body(board: SimulatedRelayModule, relay: Relay, bus: Bus) -> None:
        await relay.timed_pulse(30)  # more than the board takes: clamped to 3 x 100 ms
        await until(lambda: len(board.switches) == 2)
        assert abs(board.switches[1][0] - board.switches[0][0] - 0.3) <= TOLERANCE_S
        # a word at the relay's own coil address is not a flash: the board refuses it
        with pytest.raises(RequestFailed, match="illegal data value"):
            await bus.write_coil_word(9, 3, 7, timeout_s=1)

    with_board(body, max_steps=3)


def test_modbus_flash_needs_a_running_bus() -> None:
    relay = build_relay(ModbusCoilRelay.model_validate(FLASH_RELAY), ActuatorHub())
    with pytest.raises(RelayError, match="bus bus-1 is not running"):
        run(relay.timed_pulse, 1)


# -- the Doors component with a hardware-timed relay ---------------------------------------------------


def test_doors_pulse_a_hardware_timed_relay() -> None:
    async def body(device: SimulatedShelly) -> None:
        records: list[Record] = []
        door = DoorConfig.model_validate(
            {"id": "gate", "pulse_s": 0.4, "relay": {"type": "shelly_gen2", "url": device.url, **PINNED}}
        )
        relay = build_relay(door.relay, ActuatorHub(), password=PASSWORD)
        doors = Doors([door], {"gate": relay}, SystemClock(), records.append)
        await doors.start()
        assert [on for _, _, on in device.switches] == [False]  # released before first use
        pulse = await doors.pulse("gate", by="test")
        assert pulse["hardware_timed"] is True
        pulsed = [r for r in records if isinstance(r, Event) and r.kind == "door_pulsed"]
        assert len(pulsed) == 1 and pulsed[0].attrs["hardware_timed"] is True
        # On once, with the device's own timer. Then off: by the device's flip-back and our backstop
        # switch-off, or by the backstop alone when it lands first (it cancels the device's timer).
        states = [on for _, _, on in device.switches]
        assert states[:3] == [False, True, False] and states[3:] in ([], [False])
        assert device.outputs == [False]
        report = doors.report()
        assert report.doors[0].hardware_timed and report.doors[0].relay == "released" and report.pulses == 1
        await doors.stop()

    run(with_shelly, body, password=PASSWORD)


def test_doors_pulse_a_modbus_board_with_the_flash_function() -> None:
    async def body(board: SimulatedRelayModule, relay: Relay, bus: Bus) -> None:
        records: list[Record] = []
        door = DoorConfig.model_validate({"id": "lobby", "pulse_s": 0.5, "relay": FLASH_RELAY})
        doors = Doors([door], {"lobby": relay}, SystemClock(), records.append)
        await doors.start()
        pulse = await doors.pulse("lobby", by="test")
        assert pulse["hardware_timed"] is True
        pulsed = [r for r in records if isinstance(r, Event) and r.kind == "door_pulsed"]
        assert len(pulsed) == 1 and pulsed[0].attrs["hardware_timed"] is True
        ons = [t for t, coil, on in board.switches if coil == 3 and on]
        assert len(ons) == 1  # one flash; the rest are switch-offs (start, the board, the backstop)
        await until(lambda: board.states()[3] is False)
        await doors.stop()

    with_board(body)


def test_modbus_flash_over_an_rtu_line(tmp_path: Path) -> None:
    """The raw-word PDU frames right on RS-485 (RTU framing needs its frame size, both ways)."""
    line = PacedLine(tmp_path, baudrate=9600)
    line.start()
    board = SimulatedRelayModule(9)

    async def main() -> None:
        server = MeterServer([board])
        await server.start_serial(str(line.server_port), 9600)
        bus = Bus(parse_endpoint(f"rtu://{line.gateway_port}?baudrate=9600&parity=N&stopbits=1"))
        await bus.open()
        try:
            await bus.write_coil_word(9, 0x0200 + 1, 3, timeout_s=0.5)
            await until(lambda: len(board.switches) == 2)
            assert [(coil, on) for _, coil, on in board.switches] == [(1, True), (1, False)]
            assert abs(board.switches[1][0] - board.switches[0][0] - 0.3) <= TOLERANCE_S
            await bus.write_coil(9, 2, True, timeout_s=0.5)  # and plain coil writes with read-back
            assert board.states()[2] is True
        finally:
            bus.close()
            await server.stop()

    try:
        run(main)
    finally:
        line.stop()


# -- issue 27 point 3: a Shelly that is not the pinned one, one that lies, one without a password ---


def test_a_rogue_device_on_the_relays_address_receives_no_digest_response() -> None:
    """The rogue answers every RPC with a digest challenge of its own realm (as a device with a
    password does) hoping for a response to attack offline; the gateway sends none."""

    async def body(rogue: SimulatedShelly) -> None:
        relay = ShellyRelay(shelly_config(rogue.url), PASSWORD)  # pinned to SHELLY_ID
        for action in (relay.timed_pulse(0.3), relay.switch(False)):
            with pytest.raises(RelayError) as info:
                await action
            assert "shellyplus1-e4b063f0aa01" in str(info.value) and "no credentials sent" in str(info.value)
        assert rogue.requests == 2 and rogue.auth_attempts == 0  # asked twice, never answered
        assert rogue.switches == []

    run(with_shelly, body, password="rogue's", device_id="shellyplus1-e4b063f0aa01")


def test_a_was_on_lie_gives_exactly_one_door_relay_fault() -> None:
    async def body(device: SimulatedShelly) -> None:
        records: list[Record] = []
        door = DoorConfig.model_validate(
            {"id": "gate", "pulse_s": 0.4, "relay": {"type": "shelly_gen2", "url": device.url, **PINNED}}
        )
        doors = Doors([door], {"gate": build_relay(door.relay, ActuatorHub())}, SystemClock(), records.append)
        await doors.start()
        device.fault = "was_on_lie"  # acknowledges `on` with was_on: false, and does not switch
        with pytest.raises(DoorError, match=r"did not switch on: .*reports switch 0 off"):
            await doors.pulse("gate", by="test")
        await asyncio.sleep(0.6)  # past the pulse: nothing more is raised for it
        faults = [r for r in records if isinstance(r, Event) and r.kind == "door_relay_fault"]
        assert len(faults) == 1 and faults[0].severity == "alarm", records
        assert faults[0].attrs["door"] == "gate" and "did not switch" in faults[0].attrs["error"]
        assert not [r for r in records if isinstance(r, Event) and r.kind == "door_pulsed"]
        assert [on for _, _, on in device.switches if on] == []
        assert doors.report().doors[0].relay == "released" and doors.report().failures == 1
        device.fault = None  # an honest device again: the next pulse works, no further fault
        await doors.pulse("gate", by="test")
        assert len([r for r in records if isinstance(r, Event) and r.kind == "door_relay_fault"]) == 1

    run(with_shelly, body)


@pytest.mark.parametrize(
    ("missing", "says"),
    [
        ("password_file", "a Shelly relay without a password opens the door for anyone on its network"),
        ("device_id", "lintel doors probe DOOR --write"),
    ],
)
def test_check_config_refuses_a_shelly_door_without_password_or_pinned_device(
    tmp_path: Path, missing: str, says: str
) -> None:
    keys = {"password_file": 'password_file = "gate.pass"', "device_id": f'device_id = "{SHELLY_ID}"'}
    del keys[missing]
    door = '[[doors]]\nid = "gate"\n[doors.relay]\ntype = "shelly_gen2"\nurl = "http://10.0.0.5"\n'
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(tmp_path / "state", extra=door + "\n".join(keys.values()) + "\n"))
    (tmp_path / "gate.pass").write_text(PASSWORD + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "check-config", "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert out.returncode == 1, out  # check-config: 1 for a config with problems
    shown = out.stdout + out.stderr
    assert f"doors[0].relay.{missing}" in shown and says in shown, shown


class _ShellyThread:
    """A SimulatedShelly served from its own event loop thread (for tests that run `lintel` CLIs)."""

    def __init__(self, **sim: Any) -> None:
        import threading

        self.device = SimulatedShelly(**sim)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.device.start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.device.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _lintel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


def test_doors_probe_pins_the_device_without_sending_its_password(tmp_path: Path) -> None:
    shelly = _ShellyThread(password=PASSWORD, device_id="shellyplus1-e4b063f0aa01", mac="E4B063F0AA01")
    try:
        (tmp_path / "gate.pass").write_text(PASSWORD + "\n")
        door = (
            '[[doors]]\nid = "gate"\npulse_s = 1\n\n[doors.relay]\ntype = "shelly_gen2"\n'
            f'url = "{shelly.device.url}"  # the bike room\npassword_file = "gate.pass"\n\n'
        )
        config = tmp_path / "lintel.toml"
        config.write_text(gateway_toml(tmp_path / "state", extra=door + '[log]\nlevel = "info"\n'))
        assert _lintel("check-config", "-c", str(config)).returncode == 1  # not pinned yet

        out = _lintel("doors", "probe", "gate", "-c", str(config), "--write")
        assert out.returncode == 0, out
        assert "shellyplus1-e4b063f0aa01 (MAC E4B063F0AA01" in out.stdout
        text = config.read_text()
        assert 'device_id = "shellyplus1-e4b063f0aa01"\nmac = "E4B063F0AA01"\n\n[log]' in text
        assert "# the bike room" in text  # the rest of the file as written
        assert _lintel("check-config", "-c", str(config)).returncode == 0
        assert shelly.device.auth_attempts == 0  # the probe never answered a challenge

        # Another device on that address later: the probe says so and changes nothing.
        pinned = text.replace("shellyplus1-e4b063f0aa01", "shellyplus1-000000000001")
        config.write_text(pinned)
        out = _lintel("doors", "probe", "gate", "-c", str(config), "--write")
        assert out.returncode == 1 and "but the config pins shellyplus1-000000000001" in out.stderr, out
        assert config.read_text() == pinned
    finally:
        shelly.close()


def test_a_secret_file_readable_by_others_is_warned_about(tmp_path: Path) -> None:
    """Issue 27 point 6: check-config warns (naming the key, file, mode and fix) for a password file
    any local account can read; the doctor shows it too."""
    secret = tmp_path / "gate.pass"
    secret.write_text(PASSWORD + "\n")
    door = (
        '[[doors]]\nid = "gate"\n[doors.relay]\ntype = "shelly_gen2"\nurl = "http://127.0.0.1:9"\n'
        f'password_file = "gate.pass"\ndevice_id = "{SHELLY_ID}"\n'
    )
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(tmp_path / "state", extra=door))
    secret.chmod(0o644)
    out = _lintel("check-config", "-c", str(config))
    assert out.returncode == 0, out
    assert "doors[0].relay.password_file: the secret file is readable or writable by every local account" in (
        out.stderr
    ), out
    assert "(mode 0644)" in out.stderr and f"chmod 0640 {secret}" in out.stderr
    doctor = _lintel("doctor", "-c", str(config), "--json", "--timeout", "1")
    findings = {f["check"]: f for f in json.loads(doctor.stdout)["findings"]}
    assert findings["secret.doors[0].relay.password_file"]["level"] == "warn"
    secret.chmod(0o600)
    out = _lintel("check-config", "-c", str(config))
    assert "secret file" not in out.stderr, out


def test_a_rogue_that_copies_the_device_id_but_not_its_mac_receives_no_digest_response() -> None:
    async def body(rogue: SimulatedShelly) -> None:
        relay = ShellyRelay(shelly_config(rogue.url, mac="0C8B95F2E1A4"), PASSWORD)
        with pytest.raises(RelayError, match="not the pinned device_id and mac: no credentials sent"):
            await relay.timed_pulse(0.3)
        assert rogue.auth_attempts == 0 and rogue.switches == []

    # the rogue claims the real id (it can read it from the real device) but has its own MAC
    run(with_shelly, body, password="rogue's", device_id=SHELLY_ID, mac="E4B063F0AA01")


def test_a_pinned_mac_is_checked_once_then_trusted_for_a_while() -> None:
    async def body(device: SimulatedShelly) -> None:
        relay = ShellyRelay(shelly_config(device.url, mac="0C8B95F2E1A4"), PASSWORD)
        await relay.timed_pulse(0.2)
        await until(lambda: device.outputs == [False])
        first = device.requests
        await relay.timed_pulse(0.2)
        # Set (401, then with auth) + GetStatus (401, then with auth): no second GetDeviceInfo
        assert device.requests - first == 4 and device.auth_failures == 0

    run(with_shelly, body, password=PASSWORD)
