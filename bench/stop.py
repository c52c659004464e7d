"""Stopping under load: `lintel run` polling two simulated meters over Modbus TCP every 1 ms, with a
real broker, is sent SIGTERM `--runs` times (20) at random moments. Prints clean exits, time to
exit and to stop the sources, false "disk full" lines, and whether every accepted message reached
an independent subscriber (a final run drains what the stops left in the outbox).

    .venv/bin/python -m bench.stop [--runs 20] [--shutdown-timeout-s 10]
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import print_table
from drivers.modbus.simulator import SimulatedMeter
from tests.conftest import gateway_toml
from tests.drivers.test_modbus_stop import FAST_BUS
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel
from tests.test_process import db_last_seq


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--shutdown-timeout-s", type=float, default=10.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lintel-bench-stop-"))
    broker = Mosquitto(tmp).start()
    collector = Collector(broker.port).start()
    sim = ModbusThread([SimulatedMeter(1, "eastron_sdm120"), SimulatedMeter(2, "chint_ddsu666")]).start()
    mqtt = f'url = "{broker.url}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 1\n'
    runtime = {"shutdown_timeout_s": args.shutdown_timeout_s}
    text = gateway_toml(tmp / "state", mqtt=mqtt, sources=FAST_BUS.format(port=sim.port), runtime=runtime)
    config = tmp / "lintel.toml"
    config.write_text(text)
    rng = random.Random(11)
    exits: list[int | None] = []
    took: list[float] = []
    stage: list[float] = []
    false_full = 0
    try:
        for _ in range(args.runs):
            proc = lintel("run", "-c", str(config))
            time.sleep(rng.uniform(2.5, 4.0))  # start-up (~1.5 s) then polling at full speed
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=args.shutdown_timeout_s + 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            took.append(time.monotonic() - sent)
            exits.append(proc.returncode)
            log = err.decode()
            false_full += "could not be written" in log
            for line in log.splitlines():
                if "shutdown: sources stopped in" in line:
                    stage.append(float(line.rsplit("in ", 1)[1].split()[0]))
        accepted = db_last_seq(tmp / "state" / "outbox.db")
        proc = lintel("run", "-c", str(config))  # drain what the stops left behind
        collector.wait_for(lambda c: set(range(1, accepted + 1)) <= c.seqs(), 120)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        missing = set(range(1, accepted + 1)) - collector.seqs()
    finally:
        collector.stop()
        sim.stop()
        broker.stop()
    clean = sum(1 for rc, t in zip(exits, took, strict=True) if rc == 0 and t < args.shutdown_timeout_s)
    print_table(
        f"bench/stop: {args.runs} x SIGTERM of lintel run polling Modbus TCP every 1 ms "
        f"(shutdown_timeout_s {args.shutdown_timeout_s:g})",
        [
            ("clean exits (0, within shutdown_timeout_s)", f"{clean} of {args.runs}", f"{args.runs}"),
            ("exit codes", ", ".join(str(rc) for rc in sorted(set(exits), key=str)), "0"),
            (
                "time from SIGTERM to exit",
                f"median {statistics.median(took):.2f} s, max {max(took):.2f} s",
                "",
            ),
            ("sources stage", f"max {max(stage, default=float('nan')):.3f} s", ""),
            ('false "could not be written (disk full)" lines', f"{false_full}", "0"),
            ("accepted messages (seq)", f"{accepted:,}", ""),
            ("accepted messages never delivered", f"{len(missing):,}", "0"),
        ],
    )


if __name__ == "__main__":
    main()
