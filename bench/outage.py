"""After an outage: build a backlog of `--messages` messages with the broker unreachable, then
reconnect and measure how fast the backlog drains and how many messages were lost on the way.

A separate subscriber process counts distinct (gateway_id, seq) at the broker, so the count is
independent of the gateway's own bookkeeping.

    .venv/bin/python bench/outage.py [--messages 1000000] [--drain-rate 0] [--inflight 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Broker, cpu_seconds, peak_rss_mb, print_table
from gateway.core import Reading, SystemClock
from gateway.delivery import Uplink, UplinkSettings
from gateway.delivery.links import Links
from gateway.storage.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.upstream.encode import Encoder, Topics

SUBSCRIBER = textwrap.dedent(
    """
    import json, re, sys, time, threading
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    port, expected, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    seen = bytearray(expected + 1); state = {"n": 0, "dups": 0, "last": time.monotonic()}
    pat = re.compile(rb'"seq":(\\d+)')
    ready = threading.Event()
    def on_connect(c, u, f, rc, p):
        c.subscribe("lintel/+/+/telemetry/#", qos=1); ready.set()
    def on_message(c, u, m):
        seq = int(pat.search(m.payload).group(1))
        if seq <= expected:
            if seen[seq]: state["dups"] += 1
            else: seen[seq] = 1; state["n"] += 1
        state["last"] = time.monotonic()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter")
    c.on_connect, c.on_message = on_connect, on_message
    c.connect("127.0.0.1", port, 60); c.loop_start(); ready.wait(10)
    print("ready", flush=True)
    while state["n"] < expected and time.monotonic() - state["last"] < 30:
        time.sleep(0.2)
    json.dump({"distinct": state["n"], "duplicates": state["dups"]}, open(out, "w"))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--drain-rate", type=float, default=0.0, help="mqtt.drain_rate_msg_s (0 = unlimited)")
    parser.add_argument("--inflight", type=int, default=100)
    args = parser.parse_args()
    n = args.messages
    broker = Broker()
    tmp = Path(tempfile.mkdtemp(prefix="lintel-bench-outage-", dir=Path.cwd()))
    try:
        encoder = Encoder(Topics("lintel", "bench-site", "bench"))
        writer = OutboxWriter(
            OutboxStore(tmp / "outbox.db"),
            encoder,
            SystemClock(),
            OutboxLimits(
                max_bytes=4 << 30, min_free_bytes=100 << 20, batch_max_readings=1, max_pending=2_000_000
            ),
        )
        writer.start()
        t0 = time.monotonic()
        base = int(time.time() * 1000)
        for i in range(n):
            writer.submit(Reading(f"meter-{i % 50}", "energy_import_kwh", i / 1000, base + i))
            if i % 20_000 == 19_999:
                writer.flush()
        writer.flush()
        build_s = time.monotonic() - t0
        assert writer.last_seq == n, writer.last_seq
        db_mb = (tmp / "outbox.db").stat().st_size / 1e6

        result_file = tmp / "counted.json"
        counter = subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER, str(broker.port), str(n), str(result_file)],
            stdout=subprocess.PIPE,
        )
        assert counter.stdout is not None and counter.stdout.readline().strip() == b"ready"

        links = Links(
            Uplink(
                UplinkSettings(
                    "127.0.0.1",
                    broker.port,
                    False,
                    inflight_max=args.inflight,
                    drain_rate_msg_s=args.drain_rate,
                ),
                writer,
                encoder,
                SystemClock(),
                lambda: {},
            )
        )
        uplink = links.uplink
        cpu0 = cpu_seconds()
        t1 = time.monotonic()
        uplink.start()
        while writer.backlog_rows() > 0:
            time.sleep(0.1)
            writer.flush()
        drain_s = time.monotonic() - t1
        cpu = cpu_seconds() - cpu0
        counter.wait(120)
        counted = json.loads(result_file.read_text())
        uplink.stop()
        writer.stop()
    finally:
        broker.stop()
        for p in sorted(tmp.glob("*")):
            p.unlink()
        tmp.rmdir()
    print_table(
        f"bench/outage: {n:,} messages queued offline, then drained (inflight {args.inflight}, "
        f"drain rate {'unlimited' if not args.drain_rate else args.drain_rate})",
        [
            ("time to queue the backlog", f"{build_s:.1f} s ({n / build_s:,.0f} msg/s)", ""),
            ("outbox file with the backlog", f"{db_mb:.0f} MB", ""),
            ("drain time", f"{drain_s:.1f} s", ""),
            ("drain rate", f"{n / drain_s:,.0f} msg/s", ">= 5,000"),
            ("gateway CPU while draining", f"{cpu / drain_s * 100:.0f} % of one core", ""),
            ("distinct messages counted at the broker", f"{counted['distinct']:,}", f"{n:,}"),
            ("lost", f"{n - counted['distinct']:,}", "0"),
            ("duplicates", f"{counted['duplicates']:,}", ""),
            ("peak RSS", f"{peak_rss_mb():.0f} MB", ""),
        ],
    )


if __name__ == "__main__":
    main()
