"""End-to-end ingest: a simulated source -> pipeline -> outbox (SQLite) -> uplink -> mosquitto.

Offers `--rate` readings/s for `--seconds`, then waits until the broker has acknowledged everything.
Prints one table: throughput, CPU seconds per 100k readings, bytes written to disk per reading
(from /proc/self/io) against payload bytes per reading, peak RSS, idle RSS, and the CPU the per-row
checksum adds per reading (computed once when the row is written, once when the uplink reads it;
timed on this run's message sizes and on one-reading messages, against the run's CPU per reading).

    .venv/bin/python bench/ingest.py [--rate 25000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Broker, cpu_seconds, io_write_bytes, peak_rss_mb, print_table, rss_mb
from gateway.config import parse_config
from gateway.core import Reading
from gateway.runtime.daemon import Daemon
from gateway.storage.outbox.checks import row_crc
from gateway.upstream.encode import Encoder, Topics


def config_text(state: Path, port: int, points: int, interval_s: float) -> str:
    return f"""
[gateway]
id = "bench"
site = "bench-site"
state_dir = "{state}"
runtime_dir = "{state / "run"}"
[outbox]
max_mb = 1024
min_free_disk_mb = 100
max_pending_records = 200000
[mqtt]
url = "mqtt://127.0.0.1:{port}"
drain_rate_msg_s = 0
stats_interval_s = 60
[runtime]
status_interval_s = 5
[[sources]]
id = "load"
type = "simulated"
profile = "load"
points = {points}
interval_s = {interval_s}
"""


async def idle_rss(state: Path, port: int) -> float:
    loaded = parse_config(config_text(state, port, 3, 1.0).encode(), "bench", state)
    daemon = Daemon(loaded)
    runner = asyncio.create_task(daemon.run())
    await asyncio.sleep(5)
    rss = rss_mb()
    daemon.request_stop()
    await runner
    return rss


async def ingest(state: Path, port: int, rate: int, seconds: float) -> dict[str, float]:
    interval_s = 0.02
    points = max(1, round(rate * interval_s))
    loaded = parse_config(config_text(state, port, points, interval_s).encode(), "bench", state)
    daemon = Daemon(loaded)
    runner = asyncio.create_task(daemon.run())
    await asyncio.sleep(1.0)  # connected, warmed up
    w, up = daemon.core.writer, daemon.core.uplink
    assert up is not None
    r0, a0, p0, io0, cpu0, t0 = (
        w.committer.accepted_records,
        up.acked,
        w.committer.accepted_payload_bytes,
        io_write_bytes(),
        cpu_seconds(),
        time.monotonic(),
    )
    await asyncio.sleep(seconds)
    offered_end = time.monotonic()
    # Stop the source and wait until the broker acknowledged everything.
    for task in asyncio.all_tasks():
        if task.get_name() == "source:load":
            task.cancel()
    await asyncio.to_thread(w.flush)
    while w.backlog_rows() > 0:
        await asyncio.sleep(0.05)
    t1 = time.monotonic()
    readings = w.committer.accepted_records - r0
    result = {
        "readings": readings,
        "offered_s": offered_end - t0,
        "delivered_s": t1 - t0,
        "messages": up.acked - a0,
        "payload_bytes": w.committer.accepted_payload_bytes - p0,
        "written_bytes": io_write_bytes() - io0,
        "cpu_s": cpu_seconds() - cpu0,
        "refused": daemon.core.pipeline.refused,
        "peak_rss": peak_rss_mb(),
        "db_mb": loaded.outbox_path.stat().st_size / 1e6,
    }
    daemon.request_stop()
    await runner
    return result


def crc_seconds_per_message(readings_per_message: int, rounds: int = 20_000) -> float:
    """CPU seconds the row checksum costs one message: computed on write and checked on read."""
    enc = Encoder(Topics("lintel", "bench-site", "bench"))
    readings = [
        Reading("load", f"p{i}", float(i), 1_700_000_000_000 + i) for i in range(readings_per_message)
    ]
    topic, payload = enc.telemetry(1, 1_700_000_000_000, "load", readings)
    rounds = max(200, rounds // readings_per_message)
    t0 = time.process_time()
    for seq in range(rounds):
        # As the writer does (topic encoded) and as the reader does (the stored bytes).
        row_crc(0, seq, readings_per_message, topic.encode(), payload)
        row_crc(0, seq, readings_per_message, topic.encode(), payload)
    return (time.process_time() - t0) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=25_000, help="readings per second offered")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    broker = Broker()
    try:
        with tempfile.TemporaryDirectory(prefix="lintel-bench-", dir=Path.cwd()) as tmp:
            idle = asyncio.run(idle_rss(Path(tmp) / "idle", broker.port))
            r = asyncio.run(ingest(Path(tmp) / "ingest", broker.port, args.rate, args.seconds))
    finally:
        broker.stop()
    n = r["readings"]
    throughput = n / r["delivered_s"]
    cpu_per_reading = r["cpu_s"] / n
    per_msg = max(1, round(n / max(1, r["messages"])))
    crc_run = crc_seconds_per_message(per_msg) / per_msg
    crc_one = crc_seconds_per_message(1)
    payload_per = r["payload_bytes"] / n
    written_per = r["written_bytes"] / n
    print_table(
        f"bench/ingest: {args.rate} readings/s offered for {args.seconds:g} s, one process (GIL: one core)",
        [
            ("readings accepted and acknowledged by the broker", f"{n:,.0f}", ""),
            ("end-to-end throughput (until the last PUBACK)", f"{throughput:,.0f} readings/s", ">= 20,000"),
            ("messages (telemetry batches)", f"{r['messages']:,.0f}", ""),
            ("refused by the pipeline (queue full)", f"{r['refused']:,.0f}", "0"),
            ("CPU seconds per 100k readings", f"{r['cpu_s'] / n * 100_000:.2f} s", ""),
            ("CPU use during the run", f"{r['cpu_s'] / r['delivered_s'] * 100:.0f} % of one core", ""),
            ("payload bytes per reading", f"{payload_per:.1f} B", ""),
            (
                "bytes written to disk per reading",
                f"{written_per:.1f} B ({written_per / payload_per:.2f}x payload)",
                "<= 2x",
            ),
            (
                f"row crc CPU per reading ({per_msg} readings/message, this run)",
                f"{crc_run * 1e6:.3f} us ({crc_run / cpu_per_reading * 100:.2f} % of the CPU per reading)",
                "<= 5 %",
            ),
            (
                "row crc CPU per one-reading message (write + check)",
                f"{crc_one * 1e6:.2f} us",
                "",
            ),
            ("outbox file size at the end", f"{r['db_mb']:.1f} MB", ""),
            ("peak RSS", f"{r['peak_rss']:.1f} MB", ""),
            ("idle RSS (daemon running, 3 points/s)", f"{idle:.1f} MB", "<= 60 MB"),
        ],
    )


if __name__ == "__main__":
    main()
