"""Several requests in flight on one Modbus TCP connection (`max_inflight`), against libmodbus."""

from __future__ import annotations

import asyncio
import time

import pytest

from drivers.modbus.bus import Bus
from drivers.modbus.config import ModbusBusConfig
from drivers.modbus.endpoint import parse_endpoint
from drivers.modbus.profiles import profile_points
from drivers.modbus.source import ModbusBusSource
from gateway.core import Reading, Record, SourceContext, SystemClock
from tests.support.buses import tcp_bus
from tests.support.libmodbus import LibmodbusServer

UNITS = 8
POINTS = profile_points("chint_ddsu666")


def expected(unit: int, name: str) -> float:
    """What tests/support/libmodbus_server.c holds for a DDSU666 point (see its header), as decoded."""
    spec = next(p.spec for p in POINTS if p.name == name)
    block = 0x4000 if spec.address >= 0x4000 else 0x2000
    wire = unit * 100 + (50 if block == 0x4000 else 0) + (spec.address - block) // 2 + 0.5
    return wire * spec.scale


def bus_config(port: int, max_inflight: int) -> ModbusBusConfig:
    meters = [{"id": f"m{u}", "unit": u, "profile": "chint_ddsu666"} for u in range(1, UNITS + 1)]
    return tcp_bus(
        port, "bus-tcp", meters, interval_s=0.05, retries=0, timeout_ms=2000, max_inflight=max_inflight
    )


def test_requests_to_different_units_are_in_flight_together_and_each_gets_its_own_answer() -> None:
    """Every value read with four requests in flight is the one its own unit holds (a reply paired with
    the wrong request would carry another unit's value), and the link really had several outstanding."""
    server = LibmodbusServer(UNITS)

    async def main() -> tuple[list[Reading], int]:
        source = ModbusBusSource(bus_config(server.port, 4))
        records: list[Record] = []
        ctx = SourceContext("bus-tcp", SystemClock(), lambda r: records.append(r) or True, lambda: None)
        outstanding: list[int] = []
        task = asyncio.create_task(source.run(ctx))
        deadline = time.monotonic() + 30
        try:
            while sum(isinstance(r, Reading) for r in records) < UNITS * len(POINTS) * 20:
                link = source.bus._link
                if link is not None:
                    outstanding.append(link.outstanding)
                assert time.monotonic() < deadline, "polling stalled"
                await asyncio.sleep(0)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return [r for r in records if isinstance(r, Reading)], max(outstanding)

    try:
        readings, most = asyncio.run(main())
    finally:
        served = server.stop()
    wrong = [r for r in readings if r.value != pytest.approx(expected(int(r.source_id[1:]), r.point))]
    assert not wrong, wrong[:5]
    assert {r.source_id for r in readings} == {f"m{u}" for u in range(1, UNITS + 1)}
    assert most >= 2, "never more than one request outstanding"
    assert sum(served.values()) >= len(readings) // len(POINTS) * 2  # two merged reads per poll


def test_one_in_flight_by_default_keeps_a_serialising_gateway_working() -> None:
    """The default (1) sends the next request only after the answer: correct against any server."""
    server = LibmodbusServer(2)

    async def main() -> list[list[int] | list[bool]]:
        bus = Bus(parse_endpoint(f"tcp://127.0.0.1:{server.port}"))
        await bus.open()
        try:
            return list(await asyncio.gather(*(bus.read(u, 3, 0x2000, 2, timeout_s=1) for u in (1, 2, 1, 2))))
        finally:
            bus.close()

    try:
        answers = asyncio.run(main())
    finally:
        server.stop()
    assert answers[0] == answers[2] != answers[1] == answers[3]
