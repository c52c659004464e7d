"""A door relay whose bus never came up, at stop: fail safe first (the stop keeps trying to switch it
off, through whichever bus is current), but no `door_relay_fault`: this gateway never switched it on,
so it is not "stuck on". The Doors component against a pymodbus relay module on its own thread; the
process-level twin is `test_a_relay_whose_bus_never_came_up_raises_no_stuck_relay_fault_at_stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from drivers.modbus.bus import Bus
from drivers.modbus.endpoint import parse_endpoint
from drivers.modbus.simulator import SimulatedRelayModule
from gateway.core import Event, Record, SystemClock
from gateway.core.actuators import ActuatorHub, CoilPort
from gateway.lanes import DoorError
from gateway.lanes.doors import DoorConfig, Doors
from gateway.lanes.doors.wiring import build_relay
from tests.support.modbus_thread import ModbusThread

DOOR = {"id": "lobby", "pulse_s": 1, "relay": {"type": "modbus_coil", "bus": "bus-1", "unit": 9, "coil": 0}}


class CountingHub(ActuatorHub):
    """The runtime's hub, counting how often a relay asked it for its bus (one ask per write)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def get(self, item_id: str) -> CoilPort | None:
        self.asked += 1
        return super().get(item_id)


def faults(records: list[Record]) -> list[Record]:
    return [r for r in records if isinstance(r, Event) and r.kind == "door_relay_fault"]


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def with_board(body: Callable[[SimulatedRelayModule, int], Awaitable[None]]) -> None:
    board = SimulatedRelayModule(9)
    server = ModbusThread([board]).start()
    try:
        asyncio.run(body(board, server.port))
    finally:
        server.stop()


def test_stop_keeps_switching_off_a_relay_whose_bus_comes_up_during_the_stop() -> None:
    async def body(board: SimulatedRelayModule, port: int) -> None:
        records: list[Record] = []
        hub = CountingHub()  # the bus source has not attached its port: "bus bus-1 is not running"
        door = DoorConfig.model_validate(DOOR)
        doors = Doors([door], {"lobby": build_relay(door.relay, hub)}, SystemClock(), records.append)
        await doors.start()
        assert doors.report().doors[0].relay == "unknown"
        assert "bus bus-1 is not running" in (doors.report().doors[0].fault or "")
        stopping = asyncio.create_task(doors.stop())
        asked = hub.asked
        await until(lambda: hub.asked > asked)  # the stop tried the bus that is not there
        bus = Bus(parse_endpoint(f"tcp://127.0.0.1:{port}"))
        await bus.open()
        try:
            hub.attach("bus-1", bus)  # the bus comes up while the stop is still retrying
            await stopping
        finally:
            bus.close()
        assert [(coil, on) for _, coil, on in board.switches] == [(0, False)]
        assert doors.report().doors[0].relay == "released"
        assert faults(records) == []

    with_board(body)


def test_stop_raises_no_fault_for_a_relay_it_never_reached(caplog: pytest.LogCaptureFixture) -> None:
    async def body(board: SimulatedRelayModule, _port: int) -> None:
        records: list[Record] = []
        hub = CountingHub()  # the bus never comes up
        door = DoorConfig.model_validate(DOOR)
        relay = build_relay(door.relay, hub)
        doors = Doors([door], {"lobby": relay}, SystemClock(), records.append, stop_budget_s=1.0)
        await doors.start()
        asked = hub.asked
        with caplog.at_level(logging.WARNING, logger="lintel.doors"):
            await doors.stop()
        assert hub.asked > asked + 2  # the stop kept trying for its budget (two tries per attempt)
        assert faults(records) == []
        assert doors.report().doors[0].relay == "unknown"  # said as it is: not released, not stuck
        said = [r.getMessage() for r in caplog.records if r.name == "lintel.doors"]
        assert len(said) == 1 and "lobby" in said[0] and "state unknown at stop" in said[0], said
        assert "stuck" not in said[0]
        assert board.switches == []

    with_board(body)


def test_start_up_alarm_says_state_unknown_not_stuck_on(caplog: pytest.LogCaptureFixture) -> None:
    """A relay not reached since start past `start_grace_s` still raises `door_relay_fault` (after a
    kill -9 mid-pulse it may really be on), but says what is known: never reached, state unknown,
    not "energised and not released"; a relay this gateway energised and could not release says that."""

    async def body(board: SimulatedRelayModule, port: int) -> None:
        records: list[Record] = []
        hub = CountingHub()  # the relay's bus is not up at start
        door = DoorConfig.model_validate(DOOR)
        doors = Doors([door], {"lobby": build_relay(door.relay, hub)}, SystemClock(), records.append)
        doors.timing = dataclasses.replace(doors.timing, start_grace_s=0.3)
        with caplog.at_level(logging.WARNING, logger="lintel.doors"):
            await doors.start()
            running = asyncio.create_task(doors.run())
            await until(lambda: bool(faults(records)))
            running.cancel()
        [fault] = faults(records)
        assert isinstance(fault, Event) and fault.severity == "alarm"
        assert fault.attrs["relay_state"] == "unknown"
        assert fault.attrs["summary"] == (
            "not reached since the gateway started: state unknown (it may be on if the gateway "
            "stopped mid-pulse)"
        )
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(said) == 1 and "not reached since the gateway started: state unknown" in said[0], said
        assert "stuck" not in said[0] and "cannot be switched off" not in said[0], said

        # The bus comes up: released, recovered; then a pulse whose switch-off fails says "energised".
        bus = Bus(parse_endpoint(f"tcp://127.0.0.1:{port}"))
        await bus.open()
        hub.attach("bus-1", bus)
        try:
            await doors.start()
            assert doors.report().doors[0].relay == "released"
            pulsing = asyncio.create_task(doors.pulse("lobby", 0.2))
            await until(lambda: board.states()[0])
            hub.detach("bus-1", bus)  # gone for good: the switch-off cannot succeed
            running = asyncio.create_task(doors.run())
            with contextlib.suppress(DoorError):
                await pulsing
            await until(lambda: len(faults(records)) == 2)
            running.cancel()
        finally:
            bus.close()
        stuck = faults(records)[1]
        assert isinstance(stuck, Event) and stuck.attrs["relay_state"] == "energised"
        assert stuck.attrs["summary"] == "energised by this gateway and not released: it may be stuck on"

    with_board(body)
