"""Every shipped profile read over Modbus TCP from a real pymodbus server; mbpoll cross-checks the bytes."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
from typing import Any

import pytest

from drivers.modbus.meter import MeterPoller
from drivers.modbus.plan import plan_reads
from drivers.modbus.profiles import available, profile_points
from drivers.modbus.simulator import MeterServer, SimulatedMeter
from drivers.modbus.source import ModbusBusSource
from gateway.core import Reading, Record, SourceContext, SystemClock
from tests.support.buses import tcp_bus

# Known readings per profile, as a meter displays them. Tasmota's DDSU666 driver documents a real
# exchange: 230.2 V, 1.260 A, -196.3 W, PF 0.91, 50.0 Hz, 478.492 kWh imported, 6.216 kWh exported.
KNOWN: dict[str, dict[str, float]] = {
    "chint_ddsu666": {
        "voltage_v": 230.2,
        "current_a": 1.26,
        "power_w": -196.3,
        "power_factor": 0.91,
        "frequency_hz": 50.0,
        "energy_import_kwh": 478.492,
        "energy_export_kwh": 6.216,
    },
    "chint_dtsu666": {
        "voltage_l1_v": 230.1,
        "current_l1_a": 1.26,
        "power_w": 2196.3,
        "power_factor": 0.987,
        "frequency_hz": 49.99,
        "energy_import_kwh": 12345.67,
        "energy_export_kwh": 3.5,
    },
    "eastron_sdm120": {
        "voltage_v": 229.8,
        "current_a": 4.52,
        "power_w": 1020.5,
        "frequency_hz": 50.01,
        "energy_import_kwh": 4321.5,
    },
    "eastron_sdm630": {
        "voltage_l3_v": 231.7,
        "power_w": 7350.0,
        "energy_import_kwh": 88123.25,
        "current_neutral_a": 0.4,
    },
    "generic_water": {"volume_m3": 123.456, "flow_m3h": 0.75},
}

# What the DTSU666 really puts on the wire for 230.1 V: float32 2301.0 (unit 0.1 V), high word first.
DTSU_UA_WIRE = list(struct.unpack(">HH", struct.pack(">f", 2301.0)))


def test_every_profile_is_covered_and_cites_its_document() -> None:
    assert set(available()) == set(KNOWN)
    for profile in available().values():
        assert len(profile.document) > 100
        assert profile.points


def read_all(
    meters: list[SimulatedMeter], tables: list[dict[str, Any]]
) -> tuple[list[Record], ModbusBusSource, int]:
    async def main() -> tuple[list[Record], ModbusBusSource, int]:
        server = MeterServer(meters)
        port = await server.start_tcp()
        cfg = tcp_bus(port, "gw-tcp", tables, interval_s=60)
        source = ModbusBusSource(cfg)
        out: list[Record] = []
        ctx = SourceContext("gw-tcp", SystemClock(), lambda r: out.append(r) or True)
        task = asyncio.create_task(source.run(ctx))
        await asyncio.sleep(0.8)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
        return out, source, port

    return asyncio.run(main())


def test_each_profile_decodes_known_readings_over_tcp() -> None:
    meters = []
    for unit, (profile, values) in enumerate(sorted(KNOWN.items()), start=1):
        meter = SimulatedMeter(unit, profile)
        for name, value in values.items():
            meter.pin(name, value)
        meters.append(meter)
    tables = [
        {"id": f"m-{m.profile.replace('_', '-')}", "unit": m.unit, "profile": m.profile} for m in meters
    ]
    out, source, _ = read_all(meters, tables)
    got = {(r.source_id, r.point): r.value for r in out if isinstance(r, Reading)}
    assert not [r for r in out if not isinstance(r, Reading)], [r for r in out if not isinstance(r, Reading)]
    for meter in meters:
        mid = f"m-{meter.profile.replace('_', '-')}"
        for name, value in KNOWN[meter.profile].items():
            assert got[(mid, name)] == pytest.approx(value, rel=1e-6), (mid, name)
        # Every point of the profile was read, and in the fewest requests the map allows.
        assert {p for (s, p) in got if s == mid} == set(available()[meter.profile].points)
    by_id = {m.id: m for m in source.meters}
    # With max_gap 10: 0x0000-0x001F, 0x0046-0x004F, 0x0156 (SDM120, 12 points);
    # 0x2000-0x201B, 0x202A, 0x2044, 0x401E-0x4029 (DTSU666, 18 points).
    assert by_id["m-eastron-sdm120"].request_count() == 3
    assert by_id["m-chint-dtsu666"].request_count() == 4


def test_merged_reads_beat_one_request_per_point() -> None:
    for name in available():
        points = [p.spec for p in profile_points(name)]
        merged, single = len(plan_reads(points, 10)), len(plan_reads(points, 0))
        assert merged < len(points), name
        assert merged <= single


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll missing: scripts/test.sh installs it")
def test_mbpoll_reads_the_same_values_as_the_gateway() -> None:
    """An independent Modbus master (Debian's mbpoll) agrees with our decoding on the same server."""
    meter = SimulatedMeter(3, "chint_dtsu666")
    meter.pin("voltage_l1_v", 230.1)

    async def main() -> str:
        server = MeterServer([meter])
        port = await server.start_tcp()
        # mbpoll numbers registers from 1: 0x2006 is reference 8199; -t 4:float reads float32 ABCD.
        proc = await asyncio.create_subprocess_exec(
            "mbpoll",
            "-m",
            "tcp",
            "-p",
            str(port),
            "-a",
            "3",
            "-t",
            "4:float",
            "-B",
            "-r",
            "8199",
            "-c",
            "1",
            "-1",
            "127.0.0.1",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        stdout, _ = await proc.communicate()
        await server.stop()
        return stdout.decode()

    text = asyncio.run(main())
    assert "[8199]: \t2301" in text.replace(" ", "") or "[8199]:\t2301" in text.replace(" ", ""), text
    # And our register words for that value are exactly what the manual's format gives.
    from drivers.modbus.registers import encode

    spec = next(p.spec for p in profile_points("chint_dtsu666") if p.name == "voltage_l1_v")
    assert encode(spec, 230.1) == DTSU_UA_WIRE


def poller_for(profile: str) -> MeterPoller:
    """A poller for one meter of `profile`, planned but never connected."""
    cfg = tcp_bus(1, "b", [{"id": "m", "unit": 1, "profile": profile}])
    return MeterPoller(cfg.meters[0], cfg)


def test_poller_splits_a_merged_read_the_meter_refuses() -> None:
    """Some meters answer 'illegal data address' for holes in a merged read: read those points alone."""
    poller = poller_for("eastron_sdm120")
    group = poller.groups[0]
    before = list(group.requests)
    poller._split(group, before[0])
    assert len(group.requests) == len(before) - 1 + len(before[0].points)
    assert all(r.count == 2 for r in group.requests[: len(before[0].points)])


def test_splitting_contiguous_points_gives_one_request_each() -> None:
    """Regression: re-planning contiguous points with gap 0 merged them again and looped forever."""
    poller = poller_for("generic_water")
    group = poller.groups[0]
    assert len(group.requests) == 1 and len(group.requests[0].points) == 2  # 0x0000-0x0002 contiguous
    poller._split(group, group.requests[0])
    assert [len(r.points) for r in group.requests] == [1, 1]


def test_a_bus_read_every_five_minutes_tells_the_watchdog_its_silence_is_healthy() -> None:
    from gateway.core.source import PacedSource

    meters = [
        {"id": "water", "unit": 2, "profile": "eastron_sdm120", "interval_s": 300},
        {"id": "heat", "unit": 3, "profile": "eastron_sdm120", "interval_s": 600},
    ]
    cfg = tcp_bus(502, "bus-w", meters, interval_s=10)
    source = ModbusBusSource(cfg)
    assert isinstance(source, PacedSource)
    assert source.progress_every_s == 300  # progress after each job: quiet for the water meter's 300 s
    with_power = cfg.model_copy(
        update={
            "meters": [
                *cfg.meters,
                cfg.meters[0].model_copy(update={"id": "power", "unit": 1, "interval_s": 10}),
            ]
        }
    )
    assert ModbusBusSource(with_power).progress_every_s == 10  # a job every 10 s: a hang shows sooner


def test_a_bus_with_every_meter_disabled_stays_alive_for_its_door_relays() -> None:
    """An installer disables the only meter of a bus that also drives a door relay: the bus has
    nothing to poll but must keep telling the watchdog it is alive (it waited silently, so after
    stall_after_s systemd restarted the gateway, again and again)."""

    async def main() -> int:
        server = MeterServer([SimulatedMeter(1, "eastron_sdm120", seed=3)])
        port = await server.start_tcp()
        cfg = tcp_bus(
            port, "bus-door", [{"id": "off", "unit": 1, "profile": "eastron_sdm120", "enabled": False}]
        )
        source = ModbusBusSource(cfg)
        beats: list[float] = []
        clock = SystemClock()
        ctx = SourceContext("bus-door", clock, lambda r: True, lambda: beats.append(clock.monotonic()))
        task = asyncio.create_task(source.run(ctx))
        try:
            while len(beats) < 4:  # waits on the condition; a silent bus never gets there
                await asyncio.sleep(0.05)
                if task.done():
                    task.result()  # a crash shows here
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()
        return len(beats)

    assert asyncio.run(asyncio.wait_for(main(), 20)) >= 4
