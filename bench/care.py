"""Care watch and alarm rules: cost per reading and per tick with 500 households configured.

A building of 500 flats, each with a door sensor, a water meter and an electricity meter (1,500
devices) watched by the care watch, plus a threshold rule on every electricity meter, a
door-left-open rule on every door and a deadband rule on every meter's power: the pipeline the
daemon runs (care → rules → reminders) over the records the lanes emit, with the real state
database. Target: ≤ 20 µs per reading. Also: one tick (once a second) over all households, and the
bytes the state database writes per save and per day.

    python -m bench.care [--households 500] [--minutes 30]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from bench.common import cpu_seconds, print_table, rss_mb
from gateway.config import parse_config
from gateway.core import Event, Klass, Reading, Record
from gateway.lanes.alarms import AlarmBook, AlarmReminders
from gateway.lanes.care.watch import CareWatch
from gateway.lanes.rules.engine import RulesProcessor
from gateway.runtime.pipeline import Pipeline
from gateway.storage.state import StateStore

T0 = 1_790_000_000_000  # a Tuesday, 21:33 in Shanghai: day and night both occur in a long run


def config_text(n: int) -> str:
    parts = ['[gateway]\nid = "gw"\nsite = "s"\ntimezone = "Asia/Shanghai"\n']
    for i in range(n):
        if i % 100 == 0:  # one RS-485 line per 100 flats (200 meters)
            parts.append(
                f'[[sources]]\nid = "bus-{i // 100}"\ntype = "modbus"\nendpoint = "tcp://127.0.0.1:502"\n'
            )
        parts.append(
            f'[[sources.meters]]\nid = "e{i}"\nunit = {i % 100 * 2 + 1}\nprofile = "eastron_sdm120"\n'
        )
        parts.append(
            f'[[sources.meters]]\nid = "w{i}"\nunit = {i % 100 * 2 + 2}\nprofile = "generic_water"\n'
        )
    parts.append('[[sources]]\nid = "ble-1"\ntype = "ble"\nbackend = "simulated"\n')
    for i in range(n):
        parts.append(
            f'[[sources.sensors]]\nid = "d{i}"\naddress = "3C:2E:F5:00:{i >> 8:02X}:{i & 255:02X}"\n'
        )
    parts.append("[care]\npattern_break = true\n")
    for i in range(n):
        parts.append(
            f'[[care.households]]\nid = "flat-{i}"\ndoor = "d{i}"\n'
            f'water_meter = "w{i}"\nelectricity_meter = "e{i}"\n'
        )
        parts.append(
            f'[[rules]]\nid = "over-{i}"\ntype = "threshold"\nsource = "e{i}"\npoint = "power_w"\n'
            f"above = 7000\nfor_s = 60\n"
        )
        parts.append(f'[[rules]]\nid = "door-{i}"\ntype = "door_left_open"\nsources = ["d{i}"]\n')
        parts.append(
            f'[[rules]]\nid = "thin-{i}"\ntype = "deadband"\nsource = "e{i}"\npoints = ["power_w"]\n'
            "deadband = 20\n"
        )
    return "\n".join(parts)


def readings(n: int, minutes: int) -> list[list[Record]]:
    """Per 10-second poll: every meter's energy, power and volume; a few doors move."""
    rng = random.Random(7)
    energy = [1000.0 + i for i in range(n)]
    volume = [50.0 + i for i in range(n)]
    polls: list[list[Record]] = []
    for step in range(minutes * 6):
        ts = T0 + step * 10_000
        batch: list[Record] = []
        for i in range(n):
            power = rng.choice((40.0, 60.0, 800.0, 2200.0))
            energy[i] += power * 10 / 3_600_000
            if rng.random() < 0.1:
                volume[i] += 0.002
            batch.append(Reading(f"e{i}", "energy_import_kwh", round(energy[i], 3), ts, counter=True))
            batch.append(Reading(f"e{i}", "power_w", power, ts))
            batch.append(Reading(f"w{i}", "volume_m3", round(volume[i], 3), ts, counter=True))
            if rng.random() < 0.005:
                opened = rng.random() < 0.5
                batch.append(Event(f"d{i}", "door_opened" if opened else "door_closed", ts))
                batch.append(Reading(f"d{i}", "door_open", opened, ts, klass=Klass.STATE))
        polls.append(batch)
    return polls


def _alarm_kinds(records: list[Record]) -> str:
    kinds: dict[str, int] = {}
    for r in records:
        if isinstance(r, Event) and r.severity == "alarm" and r.attrs.get("notify") == 1:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=500)
    parser.add_argument("--minutes", type=int, default=30)
    args = parser.parse_args()
    n = args.households
    loaded = parse_config(config_text(n).encode())
    cfg = loaded.config
    assert cfg.care is not None
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(Path(tmp) / "state.db")
        book = AlarmBook(store)
        care = CareWatch(cfg.care, book, store, T0, cfg.gateway.timezone)
        rules = RulesProcessor(cfg.rules, book, store)
        sink: list[Record] = []
        pipeline = Pipeline(lambda r: sink.append(r) or True, [care, rules, AlarmReminders(book)])
        polls = readings(n, args.minutes)
        total = sum(len(p) for p in polls)
        # Readings only (ticks measured apart): the figure the target is about.
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        for batch in polls:
            for record in batch:
                pipeline.submit(record)
        per_reading_wall = (time.perf_counter() - t0) / total
        per_reading_cpu = (cpu_seconds() - cpu0) / total
        # A baseline: the same records through an empty pipeline (what every record costs anyway).
        bare = Pipeline(lambda r: True, [])
        t0 = time.perf_counter()
        for batch in polls:
            for record in batch:
                bare.submit(record)
        bare_per = (time.perf_counter() - t0) / total
        # Ticks: once a second in the daemon; here one per simulated second over the same span.
        ticks = args.minutes * 60
        t0 = time.perf_counter()
        for second in range(ticks):
            pipeline.tick(T0 + second * 1000)
        per_tick = (time.perf_counter() - t0) / ticks
        # State writes: one save with every household dirty (the worst case), repeated.
        for w in care.households.values():
            w.dirty = True
        before = store.bytes_written
        t0 = time.perf_counter()
        care.save(T0 + 3_600_000)
        save_s = time.perf_counter() - t0
        save_bytes = store.bytes_written - before
        db_bytes = sum(f.stat().st_size for f in Path(tmp).iterdir())
        per_day = save_bytes * 86_400 / cfg.care.state_save_interval_s
        store.close()
    rows = [
        (
            "care + rules per reading",
            f"{per_reading_wall * 1e6:.2f} µs ({per_reading_cpu * 1e6:.2f} µs CPU)",
            f"≤ 20 µs; {n} households, {len(cfg.rules)} rules, {total:,} records",
        ),
        ("same records, no processors", f"{bare_per * 1e6:.2f} µs", "the pipeline's own cost"),
        (
            "one tick, all households",
            f"{per_tick * 1e3:.2f} ms",
            f"once a second: {per_tick * 100:.2f} % of a core",
        ),
        (
            "state save, all households dirty",
            f"{save_bytes / 1024:.0f} KiB rows in {save_s * 1e3:.0f} ms",
            f"every {cfg.care.state_save_interval_s:g} s: ≤ {per_day / 2**20:.0f} MiB/day of rows",
        ),
        ("state database on disk", f"{db_bytes / 1024:.0f} KiB", "state.db + WAL"),
        (
            "alarms raised in the run",
            _alarm_kinds(sink),
            "random doors left open > 300 s",
        ),
        ("process RSS", f"{rss_mb():.0f} MB", "config, processors and the generated records"),
    ]
    print_table(f"Care watch and rules, {n} households, one core", rows)


if __name__ == "__main__":
    main()
