"""Fleet ingest under load: 1,000 simulated gateways of schema-v1 traffic, time-compressed.

Each simulated minute, every gateway publishes 20 meters x 8 points (20 telemetry messages), 10 BLE
sensors (10 messages of 2 points) and a `stats` (20 device reports); alarms come at
`--alarms-per-hour` per gateway; births first. Per worker count (default 1, 2, 4) on a fresh
PostgreSQL (fsync on, default settings) and a persistent mosquitto:

- burst: `--minutes` simulated minutes published as fast as one sender can; rows/s until the
  last row is in, per worker; worker CPU per 1,000 messages; PostgreSQL CPU, WAL and table
  bytes per reading; the workers' peak RSS; mosquitto's CPU and the catch-up session's
  (fleet/catchup.py, on by default, `--no-catchup` to compare) per 1,000 messages.
- paced: `--paced-minutes` more at `--rate` messages/s (the real rate of 1,000 gateways is ~520/s):
  publish-to-row latency p50/p95 (payload ts_ms to the ledger row's commit time).

    python -m bench.fleet_load [--gateways 1000] [--minutes 2] [--workers 1 2 4] [--rate 1500]

Everything runs on this machine: on a loaded 2-core box the sender, broker, PostgreSQL and the
workers share the cores, so the figures are a floor; quote them with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from fleet import db
from fleet.pg import LocalPostgres
from tests.support.fleet_procs import (
    PersistentMosquitto,
    start_catchup,
    start_worker,
    stop_process,
    wait_logged,
    wait_subscribed,
)
from tests.support.fleet_sim import Sender, SimGateway

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / CLK_TCK


def proc_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def postgres_cpu_s(pg: LocalPostgres) -> float:
    """The postmaster and its children (backends, WAL writer, checkpointer)."""
    master = int((pg.data / "postmaster.pid").read_text().split()[0])
    total = proc_cpu_s(master)
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == master:
                total += proc_cpu_s(int(d.name))
    return total


def minute(
    gateways: list[SimGateway], rng: random.Random, alarms_per_hour: float
) -> Iterator[tuple[str, str, bytes, int | None]]:
    """One simulated minute of every gateway, built at send time (ts_ms = now)."""
    for gw in gateways:
        now = time.time_ns() // 1_000_000
        for topic, payload, seq in [*gw.meter_telemetry(now), *gw.sensor_telemetry(now), gw.stats(now)]:
            yield gw.gateway_id, topic, payload, seq
        if rng.random() < alarms_per_hour / 60:
            topic, payload, seq = gw.alarm(now)
            yield gw.gateway_id, topic, payload, seq


def wait_rows(dsn: str, expected: int, timeout_s: float = 1800) -> None:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(dsn, autocommit=True) as c:
        while (c.execute("SELECT count(*) FROM ledger").fetchone() or [0])[0] < expected:
            if time.monotonic() > deadline:
                raise TimeoutError("the workers did not catch up")
            time.sleep(0.2)


def run(n_workers: int, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="fleet-load-"))
    work.chmod(0o755)  # PostgreSQL runs as its own user below it
    pg = LocalPostgres(root=work / "pg").start()
    broker = PersistentMosquitto(work).start()
    workers = []
    catchup = None
    try:
        with db.connect(pg.dsn) as c:
            db.migrate(c)
        ids = [f"w{i}" for i in range(n_workers)]
        workers = [start_worker(pg.dsn, broker.port, wid, work) for wid in ids]
        wait_subscribed(work, *ids)
        if args.catchup:
            catchup = start_catchup(pg.dsn, broker.port, work)
            wait_logged(work, "fleet-catchup", "connection 1: caught up")
        rng = random.Random(7)
        gateways = [
            SimGateway(f"gw-{i:04d}", f"site-{i // 10:03d}", rng=random.Random(i))
            for i in range(args.gateways)
        ]
        sender = Sender(broker.port, max_inflight=2000)
        for gw in gateways:
            sender.send(gw.gateway_id, *gw.birth(time.time_ns() // 1_000_000))
        sender.drain()
        with psycopg.connect(pg.dsn, autocommit=True) as c:
            wal0 = c.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
        cpu_w0 = sum(proc_cpu_s(w.pid) for w in workers)
        cpu_pg0 = postgres_cpu_s(pg)
        cpu_mq0 = proc_cpu_s(broker.proc.pid)  # type: ignore[union-attr]
        cpu_k0 = proc_cpu_s(catchup.pid) if catchup else 0.0
        t0 = time.monotonic()
        for _ in range(args.minutes):
            for gw_id, topic, payload, seq in minute(gateways, rng, args.alarms_per_hour):
                sender.send(gw_id, topic, payload, seq)
                while sender.outstanding() > 20000:  # bound the sender's own queue
                    time.sleep(0.01)
        expected = sum(gw.seq for gw in gateways)
        sender.drain(600)
        wait_rows(pg.dsn, expected)
        wall = time.monotonic() - t0
        cpu_w = sum(proc_cpu_s(w.pid) for w in workers) - cpu_w0
        cpu_pg = postgres_cpu_s(pg) - cpu_pg0
        cpu_mq = proc_cpu_s(broker.proc.pid) - cpu_mq0  # type: ignore[union-attr]
        cpu_k = proc_cpu_s(catchup.pid) - cpu_k0 if catchup else 0.0
        with psycopg.connect(pg.dsn, autocommit=True) as c:
            wal = c.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (wal0,)).fetchone()[0]  # type: ignore[index]
            readings = c.execute("SELECT count(*) FROM readings").fetchone()[0]  # type: ignore[index]
            size = c.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE relname LIKE 'readings%%'"
                " AND relkind = 'r'"
            ).fetchone()[0]  # type: ignore[index]
        # paced phase: latency at a steady rate below capacity
        paced_from = expected
        t_paced = time.monotonic()
        paced_start_ms = time.time_ns() // 1_000_000
        sent = 0
        for _ in range(args.paced_minutes):
            for gw_id, topic, payload, seq in minute(gateways, rng, args.alarms_per_hour):
                sender.send(gw_id, topic, payload, seq)
                sent += 1
                ahead = sent / args.rate - (time.monotonic() - t_paced)
                if ahead > 0:
                    time.sleep(ahead)
        expected = sum(gw.seq for gw in gateways)
        sender.drain(600)
        wait_rows(pg.dsn, expected)
        with psycopg.connect(pg.dsn, autocommit=True) as c:
            lat = (
                (0.0, 0.0)
                if not args.paced_minutes
                else c.execute(
                    "SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP"
                    " (ORDER BY extract(epoch FROM ingested_at) * 1000 - ts_ms)"
                    " FROM ledger WHERE kind = 'telemetry' AND ts_ms >= %s",
                    (paced_start_ms,),
                ).fetchone()[0]  # type: ignore[index]
            )
            dups = c.execute("SELECT count(*) - count(DISTINCT (gateway_id, seq)) FROM ledger").fetchone()[0]  # type: ignore[index]
        lost = sum(len(set(range(1, gw.seq + 1)) - sender.acked[gw.gateway_id]) for gw in gateways)
        hwm = max(proc_hwm_mb(w.pid) for w in workers)
        sender.close()
        return {
            "workers": n_workers,
            "messages": paced_from,
            "readings": readings,
            "wall_s": wall,
            "msgs_per_s": paced_from / wall,
            "msgs_per_s_per_worker": paced_from / wall / n_workers,
            "readings_per_s": readings / wall,
            "worker_cpu_ms_per_1k": cpu_w / paced_from * 1e6,
            "pg_cpu_ms_per_1k": cpu_pg / paced_from * 1e6,
            "broker_cpu_ms_per_1k": cpu_mq / paced_from * 1e6,
            "catchup_cpu_ms_per_1k": cpu_k / paced_from * 1e6,
            "catchup_peak_rss_mb": proc_hwm_mb(catchup.pid) if catchup else 0.0,
            "wal_bytes_per_reading": wal / readings,
            "table_bytes_per_reading": (size or 0) / readings,
            "latency_p50_ms": lat[0],
            "latency_p95_ms": lat[1],
            "worker_peak_rss_mb": hwm,
            "unacked_by_broker": lost,
            "duplicates": dups,
        }
    finally:
        for w in [*workers, *([catchup] if catchup else [])]:
            stop_process(w)
        broker.stop()
        pg.remove()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gateways", type=int, default=1000)
    ap.add_argument("--minutes", type=int, default=2, help="simulated minutes in the burst")
    ap.add_argument("--paced-minutes", type=int, default=1)
    ap.add_argument("--rate", type=float, default=1500, help="messages/s in the paced phase")
    ap.add_argument("--alarms-per-hour", type=float, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument(
        "--no-catchup", dest="catchup", action="store_false", help="run without the catch-up session"
    )
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for n in args.workers:
        r = run(n, args)
        w = r["workers"]
        lines = [
            f"{w} worker(s): {r['messages']} msgs ({r['readings']} readings) in {r['wall_s']:.1f} s wall",
            f"  {r['msgs_per_s']:.0f} msgs/s ({r['msgs_per_s_per_worker']:.0f} per worker),"
            f" {r['readings_per_s']:.0f} readings/s",
            f"  worker CPU {r['worker_cpu_ms_per_1k']:.0f} ms per 1k msgs,"
            f" PostgreSQL CPU {r['pg_cpu_ms_per_1k']:.0f} ms per 1k msgs",
            f"  mosquitto CPU {r['broker_cpu_ms_per_1k']:.0f} ms per 1k msgs, catch-up session CPU"
            f" {r['catchup_cpu_ms_per_1k']:.0f} ms per 1k msgs (peak RSS {r['catchup_peak_rss_mb']:.0f} MB)",
            f"  WAL {r['wal_bytes_per_reading']:.0f} B/reading,"
            f" table+indexes {r['table_bytes_per_reading']:.0f} B/reading",
            f"  paced at {args.rate:.0f} msgs/s: publish-to-row p50 {r['latency_p50_ms']:.0f} ms,"
            f" p95 {r['latency_p95_ms']:.0f} ms"
            if args.paced_minutes
            else "  (no paced phase)",
            f"  worker peak RSS {r['worker_peak_rss_mb']:.0f} MB;"
            f" not acked by the broker {r['unacked_by_broker']}, duplicates {r['duplicates']}",
        ]
        print("\n".join(lines), flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
