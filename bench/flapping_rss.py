"""Is the gateway's memory bounded while its broker flaps? (issue 28: RSS rose 55 -> 62 MiB over a
10-minute soak, 0.2-0.5 MiB at each reconnect, flat only in the last minute.)

A real `lintel run` (a simulated load source, one reading per message, Home Assistant and Sparkplug
bridges on: both links reconnect) publishes to a mosquitto that is killed every `--up-s` seconds
and comes back after `--down-s`. The process's RSS is sampled from /proc every `--sample-s`; the
table gives RSS per stretch of the run and the growth in the first and the second half. Two
in-process figures answer the suspicion about the uplink's ack memory (`RecentlyAcked`, capped at
16,384 entries): its size at the cap (tracemalloc), and how many entries a link holds while it
publishes `--rate` messages/s now that it keeps only the acks the writer has not deleted yet.

    .venv/bin/python bench/flapping_rss.py [--minutes 60] [--up-s 20] [--down-s 5] [--rate 200]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Broker, print_table
from gateway.core import Klass
from gateway.delivery.link_thread import RECENTLY_ACKED_MAX, RecentlyAcked
from tests.conftest import gateway_toml


def rss_of(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 10 ms


def ack_memory_mib() -> float:
    """What a full RecentlyAcked of (class, row seq) keys holds, as the uplink fills it."""
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    acked = RecentlyAcked()
    for seq in range(10_000_000, 10_000_000 + 2 * RECENTLY_ACKED_MAX):
        acked.add((Klass.TELEMETRY, seq))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return grown / (1024 * 1024)


def ack_entries_held(rate: int, seconds: float = 15) -> int:
    """The most entries the native link's ack memory held, sampled while publishing `rate` msg/s."""
    from tests.support.harness import InProcessGateway, SteadyLoad

    broker = Broker()
    tmp = Path(tempfile.mkdtemp(prefix="lintel-bench-acks-"))
    gw = InProcessGateway(tmp / "o.db", broker.port).start()
    load = SteadyLoad(gw.writer, rate_per_s=rate).start()
    most = 0
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            most = max(most, len(gw.uplink.recently_acked))
            time.sleep(0.01)
    finally:
        load.stop()
        gw.stop()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return most


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--up-s", type=float, default=20)
    ap.add_argument("--down-s", type=float, default=5)
    ap.add_argument("--rate", type=int, default=200, help="readings (= messages) per second")
    ap.add_argument("--sample-s", type=float, default=30)
    args = ap.parse_args()
    broker = Broker()
    tmp = Path(tempfile.mkdtemp(prefix="lintel-bench-flap-"))
    sources = f"""
[[sources]]
id = "load-1"
type = "simulated"
profile = "load"
points = {max(1, args.rate // 10)}
interval_s = 0.1
"""
    mqtt = f'url = "mqtt://127.0.0.1:{broker.port}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 2\n'
    bridges = "\n[bridges.home_assistant]\nenabled = true\n\n[bridges.sparkplug]\nenabled = true\n"
    text = gateway_toml(tmp / "state", mqtt=mqtt, sources=sources, outbox={"batch_max_readings": 1}) + bridges
    config = tmp / "lintel.toml"
    config.write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples: list[tuple[float, float]] = []
    flaps = 0
    try:
        start = time.monotonic()
        end = start + args.minutes * 60
        next_sample = start + min(10.0, args.sample_s)  # after start-up: the first sample is the base
        next_flap = start + args.up_s
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - start, rss_of(proc.pid)))
                next_sample += args.sample_s
            if now >= next_flap:
                broker.kill()
                time.sleep(args.down_s)
                broker.start()
                flaps += 1
                next_flap = time.monotonic() + args.up_s
            time.sleep(0.2)
        samples.append((time.monotonic() - start, rss_of(proc.pid)))
        cpu = cpu_of(proc.pid)
        status = json.loads((tmp / "state" / "run" / "status.json").read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    half = len(samples) // 2
    first, second = samples[: half + 1], samples[half:]
    step = max(1, len(samples) // 12)
    rows = [(f"RSS at {t / 60:.1f} min", f"{rss:.1f} MiB", "") for t, rss in samples[::step]]
    rows += [
        ("broker restarts", f"{flaps}", ""),
        ("uplink connects", f"{status['uplink']['connects']}", f"{flaps + 1}"),
        ("RSS growth, first half", f"{first[-1][1] - first[0][1]:+.1f} MiB", ""),
        ("RSS growth, second half", f"{second[-1][1] - second[0][1]:+.1f} MiB", "~0 (bounded)"),
        ("peak RSS", f"{max(r for _t, r in samples):.1f} MiB", ""),
        ("gateway CPU", f"{cpu:.0f} s in {args.minutes:g} min", ""),
        (f"ack memory at its cap ({RECENTLY_ACKED_MAX:,} keys)", f"{ack_memory_mib():.2f} MiB", ""),
        (f"ack entries a link holds at {args.rate} msg/s", f"{ack_entries_held(args.rate)}", "tens"),
    ]
    print_table(
        f"bench/flapping_rss: lintel run, {args.rate} messages/s, broker up {args.up_s:g} s / down "
        f"{args.down_s:g} s, both bridges on",
        rows,
    )


if __name__ == "__main__":
    main()
