"""A keyless flood of the command topic (issue 27 point 2): 100 messages/s of ~300 kB for 5 minutes
against a real `lintel run` and mosquitto, with a keyholder's signed command every 5 s.

Prints the daemon's peak and last RSS, its CPU time, the keyholders' answer times (max, median)
and what the inbox dropped unread. Targets: the daemon stays up, RSS < 200 MB (the unit's
MemoryMax is 512M), every keyholder command answered within 2 s.

    python -m bench.command_flood [--seconds 300] [--rate 100] [--bytes 299000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import print_table
from drivers.modbus.simulator import SimulatedMeter, SimulatedRelayModule
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.commander import Commander, envelope
from tests.support.flood import Flood, cpu_s, rss_mb
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel, lintel_output, stop_and_show_log
from tests.test_attacker import config_text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--bytes", type=int, default=299_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lintel-flood-"))
    broker = Mosquitto(tmp).start()
    modbus = ModbusThread([SimulatedMeter(1, "eastron_sdm120"), SimulatedRelayModule(9)]).start()
    config = tmp / "lintel.toml"
    config.write_text(config_text(tmp, broker.port, modbus.port))
    births = Collector(broker.port, topic="lintel/+/+/birth").start()
    commander = Commander(broker.port)
    proc = lintel("run", "-c", str(config))
    answers: list[float] = []
    failures: list[str] = []
    peak = 0.0
    try:
        births.wait_for(lambda c: bool(c.snapshot()), 30)
        time.sleep(1)
        cpu0, rss0 = cpu_s(proc.pid), rss_mb(proc.pid)
        flood = Flood(broker.port, args.rate, args.bytes).start()
        started = time.monotonic()
        next_command = started + 5
        while time.monotonic() - started < args.seconds and proc.poll() is None:
            peak = max(peak, rss_mb(proc.pid))
            if time.monotonic() >= next_command:
                sent = time.monotonic()
                try:
                    result = commander.call(envelope("ping"), timeout=10)
                    answers.append(time.monotonic() - sent)
                    if result["outcome"] != "ok":
                        failures.append(str(result.get("code")))
                except TimeoutError:
                    failures.append("no answer in 10 s")
                next_command = time.monotonic() + 5
            time.sleep(0.2)
        flood.stop()
        elapsed = time.monotonic() - started
        alive = proc.poll() is None
        cpu = cpu_s(proc.pid) - cpu0 if alive else float("nan")
        last = rss_mb(proc.pid) if alive else float("nan")
        status = lintel_output("status", "--json", "-c", str(config)).stdout
    finally:
        stop_and_show_log(proc)
        commander.close()
        births.stop()
        modbus.stop()
        broker.stop()
    import json

    inbox = json.loads(status)["status"]["commands"]["inbox"] if status else {}
    print_table(
        f"bench/command_flood: {args.rate:g} msg/s of {args.bytes:,} bytes for {elapsed:.0f} s "
        f"({flood.sent:,} sent) against lintel run",
        [
            ("daemon alive at the end", str(alive), "True"),
            ("RSS before / peak / last", f"{rss0:.0f} / {peak:.0f} / {last:.0f} MB", "peak < 200 MB"),
            ("daemon CPU during the flood", f"{cpu:.1f} s ({100 * cpu / elapsed:.0f}% of one core)", ""),
            (
                "keyholder ping answer (n, median, max)",
                f"{len(answers)}, {statistics.median(answers) if answers else float('nan'):.3f} s, "
                f"{max(answers, default=float('nan')):.3f} s",
                "max < 2 s",
            ),
            ("keyholder commands not ok", ", ".join(failures) or "none", "none"),
            ("inbox", ", ".join(f"{k} {v:,}" for k, v in inbox.items()), ""),
        ],
    )


if __name__ == "__main__":
    main()
