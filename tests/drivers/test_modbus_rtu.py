"""Modbus RTU against a real pymodbus server over socat ptys, paced at 9600 baud, with faults injected."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.modbus.bus import Bus, BusDown, RequestFailed
from drivers.modbus.config import ModbusBusConfig
from drivers.modbus.endpoint import parse_endpoint
from drivers.modbus.profiles import MeterPoint
from drivers.modbus.registers import PointSpec
from drivers.modbus.simulator import MeterServer, SimulatedMeter
from drivers.modbus.source import ModbusBusSource
from gateway.core import Event, Reading, Record, SourceContext, SystemClock
from tests.support.serial_line import PacedLine


@pytest.fixture
def line(tmp_path: Path) -> Iterator[PacedLine]:
    paced = PacedLine(tmp_path, baudrate=9600)
    paced.start()
    yield paced
    paced.stop()


def relay_module(unit: int) -> SimulatedMeter:
    """A relay board: 4 coils at 0-3 (the door relays face access will pulse)."""
    coils = [MeterPoint(PointSpec(f"relay_{i}", 1, i, "bool")) for i in range(4)]
    return SimulatedMeter(unit, "relay", points=coils)


def with_server(
    line: PacedLine, meters: list[SimulatedMeter], body: Callable[[MeterServer], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        server = MeterServer(meters)
        await server.start_serial(str(line.server_port), 9600)
        try:
            return await body(server)
        finally:
            await server.stop()

    return asyncio.run(main())


def endpoint(line: PacedLine) -> str:
    return f"rtu://{line.gateway_port}?baudrate=9600&parity=N&stopbits=1"


def crc16(frame: bytes) -> bytes:
    """Modbus RTU's CRC (polynomial 0xA001, initial 0xFFFF), low byte first."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


async def raw_read_s(port: Path, request: bytes, answer_bytes: int) -> float:
    """One request written straight to the port and its answer read back on this event loop (the
    one the bus and the meter run on), nothing else: the time the line, the relay and the meter
    take on this machine, right now."""
    loop = asyncio.get_running_loop()
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    got = bytearray()
    done = loop.create_future()

    def readable() -> None:
        got.extend(os.read(fd, 256))
        if len(got) >= answer_bytes and not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        t = time.monotonic()
        os.write(fd, request)
        await asyncio.wait_for(done, 2.0)
        took = time.monotonic() - t
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    assert got[:3] == bytes([1, 4, 20]) and crc16(bytes(got[:-2])) == got[-2:], got.hex()
    return took


def test_a_10_register_read_takes_wire_time_at_9600_baud(line: PacedLine) -> None:
    """The bus adds nothing to the line's own time. Both are wall time, so the bus's reads are
    compared with raw reads of the same registers over the same line, interleaved: on a loaded
    machine every party (the relay, the meter, the client) waits for a CPU, and what the bus must
    not add is a wait of its own (a fixed inter-frame delay, a poll, a timeout ending the frame)."""
    request = bytes([1, 4, 0, 0, 0, 10])
    request += crc16(request)

    async def body(_: MeterServer) -> tuple[list[float], list[float]]:
        # raw reads before and after the bus's (the port has one reader at a time)
        raw_took = [await raw_read_s(line.gateway_port, request, 25) for _ in range(5)]
        bus = Bus(parse_endpoint(endpoint(line)))
        await bus.open()
        bus_took = []
        for _ in range(10):
            t = time.monotonic()
            # (the timeout is not under test here: generous, so a starved relay is not a failure)
            registers = await bus.read(1, 4, 0x0000, 10, timeout_s=2.0)
            bus_took.append(time.monotonic() - t)
            assert len(registers) == 10
        bus.close()
        raw_took += [await raw_read_s(line.gateway_port, request, 25) for _ in range(5)]
        return bus_took, raw_took

    took, raw = with_server(line, [SimulatedMeter(1, "eastron_sdm120")], body)
    ep = parse_endpoint(endpoint(line))
    on_wire = (8 + 5 + 20) * ep.char_time_s  # request + response bytes, as the issue states: ~34 ms
    assert 0.033 < on_wire < 0.036
    # Never faster than the bytes on the wire (the relay paces them) ...
    assert min(took) >= on_wire and min(raw) >= on_wire, (took, raw)
    # ... and, best read against best read (each minimum is the read the machine's load disturbed
    # least), within a few ms of a client that does nothing but write and read: idle, the bus takes
    # 5-7 ms more (it waits out the 3.5-character gap that ends a frame); a fixed wait or a poll of
    # its own would show here, in every read.
    assert min(took) < min(raw) + 0.020, (took, raw)
    print(f"10 registers: bus {min(took) * 1000:.1f} ms, raw {min(raw) * 1000:.1f} ms, "
          f"wire {ep.wire_time_s(8, 5 + 20) * 1000:.1f} ms")  # fmt: skip


def test_faults_are_classified_and_never_break_the_next_request(line: PacedLine) -> None:
    async def body(_: MeterServer) -> dict[str, Any]:
        bus = Bus(parse_endpoint(endpoint(line)))
        await bus.open()
        seen: dict[str, Any] = {}

        async def fails(**kw: Any) -> RequestFailed:
            with pytest.raises(RequestFailed) as info:
                await bus.read(**kw)
            return info.value

        line.drop_units.add(2)
        t = time.monotonic()
        seen["no_answer"] = await fails(unit=2, function=3, address=0x2000, count=4, timeout_s=0.2)
        seen["no_answer_s"] = time.monotonic() - t
        line.drop_units.clear()
        line.corrupt_responses = 1
        seen["crc"] = await fails(unit=2, function=3, address=0x2000, count=4, timeout_s=0.2)
        seen["illegal"] = await fails(unit=2, function=3, address=0x6000, count=2, timeout_s=0.2)
        # Garbage on the line before an answer spoils that frame; one retry gets the value.
        line.garbage_before_responses = 1
        seen["after_garbage"] = await bus.read(2, 3, 0x2006, 2, timeout_s=0.2, retries=1)
        # A late answer from unit 1 must not be taken as unit 2's answer.
        line.delay_responses_s = 0.3
        seen["late"] = await fails(unit=1, function=4, address=0x0000, count=2, timeout_s=0.2)
        line.delay_responses_s = 0.0
        seen["after_late"] = await bus.read(2, 3, 0x2006, 2, timeout_s=0.5)
        seen["stats"] = bus.stats
        bus.close()
        return seen

    meter2 = SimulatedMeter(2, "chint_dtsu666")
    meter2.pin("voltage_l1_v", 231.4)
    seen = with_server(line, [SimulatedMeter(1, "eastron_sdm120"), meter2], body)
    assert seen["no_answer"].reason == "timeout"
    assert 0.19 < seen["no_answer_s"] < 0.35
    assert seen["crc"].reason == "bad_frame"
    assert (seen["illegal"].reason, seen["illegal"].code) == ("exception", 2)
    assert "illegal data address" in str(seen["illegal"])
    # DTSU666 Ua is float32 in 0.1 V: 231.4 V is 2314.0 on the wire.
    assert seen["after_garbage"] == [0x4510, 0xA000]
    assert seen["late"].reason == "timeout"
    assert seen["after_late"] == [0x4510, 0xA000]
    assert seen["stats"].attempt_failures["bad_frame"] >= 2


def test_coil_write_is_verified_by_reading_it_back(line: PacedLine) -> None:
    async def body(server: MeterServer) -> list[bool]:
        bus = Bus(parse_endpoint(endpoint(line)))
        await bus.open()
        await bus.write_coil(7, 2, True, timeout_s=0.3)
        after_on = await bus.read(7, 1, 0, 4, timeout_s=0.3)
        await bus.write_coil(7, 2, False, timeout_s=0.3)
        after_off = await bus.read(7, 1, 0, 4, timeout_s=0.3)
        bus.close()
        return [*after_on, *after_off]

    bits = with_server(line, [relay_module(7)], body)
    assert bits == [False, False, True, False, False, False, False, False]


def run_source(
    line: PacedLine,
    meters: list[SimulatedMeter],
    config: dict[str, Any],
    seconds: float,
    during: Callable[[MeterServer, ModbusBusSource], Awaitable[None]] | None = None,
) -> tuple[list[tuple[float, Record]], ModbusBusSource]:
    cfg = ModbusBusConfig.model_validate(
        {"type": "modbus", "id": "bus-1", "endpoint": endpoint(line), **config}
    )
    source = ModbusBusSource(cfg)
    out: list[tuple[float, Record]] = []

    async def body(server: MeterServer) -> None:
        ctx = SourceContext("bus-1", SystemClock(), lambda r: out.append((time.monotonic(), r)) or True)
        task = asyncio.create_task(source.run(ctx))
        if during is not None:
            await during(server, source)
        else:
            await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with_server(line, meters, body)
    return out, source


def polls_of(out: list[tuple[float, Record]], meter_id: str, point: str) -> list[float]:
    return [t for t, r in out if isinstance(r, Reading) and r.source_id == meter_id and r.point == point]


def test_a_dead_meter_costs_the_live_ones_at_most_its_timeout(line: PacedLine) -> None:
    live = [SimulatedMeter(u, "eastron_sdm120", seed=u) for u in (1, 2, 3)]
    line.drop_units.add(9)  # unit 9 is configured but never answers
    config = {
        "interval_s": 1.0,
        "timeout_ms": 250,
        "retries": 1,
        "meters": [
            *(
                {
                    "id": f"m{m.unit}",
                    "unit": m.unit,
                    "profile": "eastron_sdm120",
                    "read": ["power_w", "energy_import_kwh"],
                }
                for m in live
            ),
            {"id": "dead", "unit": 9, "profile": "eastron_sdm120", "read": ["power_w"]},
        ],
    }
    out, source = run_source(line, live, config, seconds=8.5)
    for m in live:
        times = polls_of(out, f"m{m.unit}", "power_w")
        assert len(times) >= 7, (m.unit, len(times))
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # On a fixed 1 s grid: a dead neighbour may delay a poll by its own timeout, never more.
        assert all(0.6 < g < 1.4 for g in gaps), (m.unit, gaps)
    events = [r for _, r in out if isinstance(r, Event) and r.source_id == "dead"]
    assert [e.kind for e in events] == ["device_offline"]
    assert events[0].attrs["reason"] == "timeout"
    # The breaker spaces out probes: 2 polls with a retry (4 frames), then probes at 1 s, 2 s, 4 s.
    dead_frames = line.requests_seen.count(9)
    assert 4 <= dead_frames <= 7, dead_frames
    assert source.meters[3].errors["timeout"] >= 2


def test_counter_reset_and_implausible_jump_become_events(line: PacedLine) -> None:
    meter = SimulatedMeter(1, "eastron_sdm120")

    async def during(server: MeterServer, source: ModbusBusSource) -> None:
        meter.pin("energy_import_kwh", 5000.0)
        await asyncio.sleep(1.2)
        meter.pin("energy_import_kwh", 12.0)  # meter replaced
        await asyncio.sleep(1.0)
        meter.pin("energy_import_kwh", 90_000.0)  # a misread: +90 MWh in half a second
        await asyncio.sleep(1.0)
        meter.pin("energy_import_kwh", 12.004)
        await asyncio.sleep(1.0)

    config = {
        "interval_s": 0.5,
        "meters": [{"id": "m1", "unit": 1, "profile": "eastron_sdm120", "read": ["energy_import_kwh"]}],
    }
    out, _ = run_source(line, [meter], config, 0, during)
    events = [r for _, r in out if isinstance(r, Event)]
    kinds = [e.kind for e in events]
    assert kinds == ["counter_reset", "implausible_jump"], kinds
    assert events[0].attrs["previous"] == 5000.0 and events[0].attrs["value"] == 12.0
    values = [r.value for _, r in out if isinstance(r, Reading)]
    assert 90_000.0 not in values  # never published: it would corrupt consumption
    assert values[-1] == pytest.approx(12.004)
    assert all(r.counter for _, r in out if isinstance(r, Reading))


def test_unplugged_adapter_takes_meters_offline_and_they_return(line: PacedLine) -> None:
    meters = [SimulatedMeter(1, "eastron_sdm120"), SimulatedMeter(2, "chint_ddsu666")]

    async def during(server: MeterServer, source: ModbusBusSource) -> None:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(line.unplug)
        await asyncio.sleep(2.5)
        await asyncio.to_thread(line.replug)
        await asyncio.sleep(4.0)

    config = {
        "interval_s": 0.5,
        "timeout_ms": 200,
        "meters": [
            {"id": "m1", "unit": 1, "profile": "eastron_sdm120", "read": ["power_w"]},
            {"id": "m2", "unit": 2, "profile": "chint_ddsu666", "read": ["power_w"]},
        ],
    }
    out, _ = run_source(line, meters, config, 0, during)
    for meter_id in ("m1", "m2"):
        kinds = [r.kind for _, r in out if isinstance(r, Event) and r.source_id == meter_id]
        assert kinds == ["device_offline", "device_online"], (meter_id, kinds)
        offline = next(r for _, r in out if isinstance(r, Event) and r.source_id == meter_id)
        assert offline.attrs["reason"] in ("disconnected", "timeout")
        times = polls_of(out, meter_id, "power_w")
        assert any(t > times[0] + 4.5 for t in times), "no readings after the adapter came back"


def test_bus_down_is_raised_when_the_port_is_missing(tmp_path: Path) -> None:
    async def main() -> None:
        bus = Bus(parse_endpoint(f"rtu://{tmp_path}/ttyUSB-gone?baudrate=9600"))
        with pytest.raises(BusDown, match="cannot open"):
            await bus.open()

    asyncio.run(main())
