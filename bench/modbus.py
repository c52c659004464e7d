"""Modbus poll cycle: 32 meters x a full profile, over Modbus TCP and over a paced 9600-baud RTU line.

Prints requests per cycle (merged vs one per point), cycle time vs the theoretical wire time, and
the gateway's CPU per cycle. The RTU line is two socat pty pairs joined by the test suite's relay,
which passes bytes at baud/10 per second like a real RS-485 line.

    .venv/bin/python -m bench.modbus [--meters 32] [--profile eastron_sdm120] [--cycles 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench.common import cpu_seconds, print_table
from drivers.modbus.bus import Bus
from drivers.modbus.config import ModbusBusConfig
from drivers.modbus.endpoint import Endpoint, parse_endpoint
from drivers.modbus.meter import MeterPoller
from drivers.modbus.plan import plan_reads
from drivers.modbus.profiles import profile_points
from drivers.modbus.simulator import MeterServer, SimulatedMeter
from tests.support.serial_line import PacedLine


def _pollers(endpoint: str, meters: int, profile: str) -> list[MeterPoller]:
    cfg = ModbusBusConfig.model_validate(
        {
            "type": "modbus",
            "id": "bench",
            "endpoint": endpoint,
            "timeout_ms": 1000,
            "retries": 0,
            "turnaround_ms": 0,
            "meters": [{"id": f"m{u}", "unit": u, "profile": profile} for u in range(1, meters + 1)],
        }
    )
    return [MeterPoller(m, cfg) for m in cfg.meters]


def _wire_time(ep: Endpoint, pollers: list[MeterPoller]) -> float:
    total = 0.0
    for p in pollers:
        for g in p.groups:
            for r in g.requests:
                data = (r.count + 7) // 8 if r.function in (1, 2) else 2 * r.count
                total += ep.wire_time_s(8, 5 + data)
    return total


async def _cycles(bus: Bus, pollers: list[MeterPoller], cycles: int) -> tuple[float, float, int]:
    best = float("inf")
    cpu0 = cpu_seconds()
    readings = 0
    for _ in range(cycles):
        t0 = time.monotonic()
        for p in pollers:
            for g in p.groups:
                readings += len(await p.poll(bus, g, lambda: int(time.time() * 1000), time.monotonic()))
        best = min(best, time.monotonic() - t0)
    return best, (cpu_seconds() - cpu0) / cycles, readings // cycles


async def run(meters: int, profile: str, cycles: int) -> None:
    points = profile_points(profile)
    merged = len(plan_reads([p.spec for p in points], 10))
    single = len(points)
    rows = [
        ("profile", f"{profile}: {single} points", ""),
        ("requests per meter", f"{merged} merged", f"{single} one per point"),
    ]

    sims = [SimulatedMeter(u, profile, seed=u) for u in range(1, meters + 1)]
    server = MeterServer(sims)
    port = await server.start_tcp()
    pollers = _pollers(f"tcp://127.0.0.1:{port}", meters, profile)
    bus = Bus(parse_endpoint(f"tcp://127.0.0.1:{port}"))
    await bus.open()
    best, cpu, readings = await _cycles(bus, pollers, cycles)
    bus.close()
    await server.stop()
    rows.append(
        (
            "TCP cycle",
            f"{best * 1000:.1f} ms",
            f"{meters} meters, {merged * meters} requests, {readings} readings",
        )
    )
    rows.append(
        ("TCP CPU per cycle", f"{cpu * 1000:.1f} ms", "gateway side (server runs in the same process)")
    )

    with tempfile.TemporaryDirectory() as tmp:
        line = PacedLine(Path(tmp), baudrate=9600)
        line.start()
        try:
            server = MeterServer(sims)
            await server.start_serial(str(line.server_port), 9600)
            endpoint = f"rtu://{line.gateway_port}?baudrate=9600"
            pollers = _pollers(endpoint, meters, profile)
            bus = Bus(parse_endpoint(endpoint), turnaround_s=0.0)
            await bus.open()
            best, cpu, readings = await _cycles(bus, pollers, cycles)
            bus.close()
            await server.stop()
        finally:
            line.stop()
    wire = _wire_time(parse_endpoint(endpoint), pollers)
    rows.append(
        ("RTU 9600 cycle", f"{best:.2f} s", f"wire time {wire:.2f} s, +{(best / wire - 1) * 100:.0f} %")
    )
    rows.append(("RTU CPU per cycle", f"{cpu * 1000:.1f} ms", f"{readings} readings"))
    one_per_point = sum(parse_endpoint(endpoint).wire_time_s(8, 5 + 2 * p.spec.size) for p in points) * meters
    rows.append(("RTU wire time, one request per point", f"{one_per_point:.2f} s", "what merging saves"))
    print_table(f"Modbus poll cycle: {meters} meters x {profile}", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=32)
    parser.add_argument("--profile", default="eastron_sdm120")
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.meters, args.profile, args.cycles))


if __name__ == "__main__":
    main()
