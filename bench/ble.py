"""BLE lane throughput: adverts decoded per second and CPU per advert, plain and encrypted.

Runs the full lane after the radio: the source's non-blocking hand-off (`on_advert` → queue), the
decoder, the sensor tracker (downgrade and replay guards included), the emit and the saving of
replay counters (into a SQLite state.db, as the daemon does), on one core, with a building of 200
sensors whose doors change on 1 advert in 10 (the rest are repeats and heartbeats, as on a real
radio). Target: ≥ 5,000 plain adverts/s (a busy building produces a few hundred per second).

The adverts are queued at once, so counters are saved once per sensor when the queue drains; at
real rates the queue is empty after each advert and every door change costs one counter write,
timed on its own in the last row.

    python -m bench.ble [--adverts 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from bench.common import cpu_seconds, print_table, rss_mb
from drivers.ble.adverts import Advert
from drivers.ble.config import BleConfig
from drivers.ble.simulator import SimulatedSensor
from drivers.ble.source import BleSource
from gateway.core import Record, SourceContext, SystemClock
from gateway.storage.state import StateStore

SENSORS = 200


def _address(i: int) -> str:
    return f"3C:2E:F5:{i >> 16 & 0xFF:02X}:{i >> 8 & 0xFF:02X}:{i & 0xFF:02X}"


def _adverts(model: str, keyed: bool, count: int) -> tuple[BleConfig, list[Advert]]:
    rng = random.Random(1)
    key = bytes(range(16)) if keyed else None
    sensors = [SimulatedSensor(_address(i), model, key) for i in range(SENSORS)]
    config = BleConfig.model_validate(
        {
            "type": "ble",
            "id": "ble-bench",
            "sensors": [
                {"id": f"s{i}", "address": s.address, **({"bindkey": key.hex()} if key else {})}
                for i, s in enumerate(sensors)
            ],
        }
    )
    adverts = []
    for n in range(count):
        sensor = sensors[rng.randrange(SENSORS)]
        if n % 10 == 0:  # a door changes: a new transmission, as a real sensor sends it
            sensor.door_open = not sensor.door_open
            sensor.next_packet()
        elif n % 3 == 0:  # otherwise two repeats of each transmission, then a heartbeat
            sensor.next_packet()
        adverts.append(sensor.advert(n / 200))  # a busy building: 200 adverts/s
    return config, adverts


async def _run(config: BleConfig, adverts: list[Advert], state_db: Path) -> tuple[float, float, int, int]:
    records: list[Record] = []
    store = StateStore(state_db)
    source = BleSource(config, scanner=None)
    source._load_sensors(0.0, store)
    source._queue = asyncio.Queue(len(adverts) + 1)
    ctx = SourceContext("ble-bench", SystemClock(), lambda r: records.append(r) or True, store=store)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for advert in adverts:
        source.on_advert(advert)
    queue = source._queue
    while not queue.empty():
        advert = queue.get_nowait()
        source.process(ctx, advert)
        if queue.empty():  # as the consumer task does
            source.counters.flush(advert.ts)
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    store.close()
    return elapsed, cpu, len(records), store.writes


def _write_cost(state_db: Path, writes: int = 2000) -> float:
    """Mean seconds of one replay-counter write (an upsert + commit in state.db, WAL)."""
    store = StateStore(state_db)
    t0 = time.perf_counter()
    for i in range(writes):
        store.put("ble.counters", _address(i % SENSORS), {"counter": i, "key": "0123456789abcdef"})
    elapsed = time.perf_counter() - t0
    store.close()
    return elapsed / writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adverts", type=int, default=200_000)
    args = parser.parse_args()
    rows = []
    for label, model, keyed in [
        ("BTHome v2, plain", "SBDW-002C", False),
        ("BTHome v2, AES-CCM", "SBDW-002C", True),
        ("MiBeacon v5, AES-CCM", "MCCGQ02HL", True),
        ("Qingping, plain", "CGH1", False),
    ]:
        config, adverts = _adverts(model, keyed, args.adverts)
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu, records, writes = asyncio.run(_run(config, adverts, Path(tmp) / "state.db"))
        rows.append(
            (
                label,
                f"{len(adverts) / wall:,.0f} adverts/s",
                f"{cpu / len(adverts) * 1e6:.1f} µs CPU/advert, {records:,} records, "
                f"{writes:,} counter writes",
            )
        )
    with tempfile.TemporaryDirectory() as tmp:
        write_s = _write_cost(Path(tmp) / "state.db")
    rows.append(("counter write (state.db)", f"{write_s * 1e6:.0f} µs", "per door change at real rates"))
    rows.append(("process RSS", f"{rss_mb():.0f} MB", f"{SENSORS} sensors, {args.adverts:,} adverts per run"))
    print_table("BLE lane: decode + dedup + semantics, one core", rows)


if __name__ == "__main__":
    main()
