"""Fleet failover, repeated: each failure alone and both together, several runs each.

    .venv/bin/python -m bench.fleet_failover [--repeat 3] [--gateways 1000] [--scenarios ...]

The suite (tests/test_fleet_load.py) runs one case: a worker killed -9 and restarted, then a clean
broker restart, in one run. Here each scenario of `tests/support/fleet_failover.SCENARIOS`
(`worker_killed`, `broker_restarted`, `worker_killed_and_broker_restarted`) runs `--repeat` times,
each on a fresh database and a fresh persistent mosquitto (one PostgreSQL cluster, settings as the
tests'): 1,000 simulated gateways publish two rounds (4 meters, 2 sensors and a stats each) into 3
workers and the catch-up session. Per scenario it prints: runs, messages acknowledged, lost
(acknowledged but not in the ledger), readings written twice, readings rows minus the readings
sent (negative: lost readings), restarted worker with its session
back, seconds to the last ledger row (median, worst). Target: 0 lost, 0 twice, in every run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.common import print_table
from fleet.pg import LocalPostgres
from tests.support import fleet_failover
from tests.support.fleet_db import fresh_fleet_db
from tests.support.fleet_procs import PersistentMosquitto


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--scenarios", nargs="+", default=list(fleet_failover.SCENARIOS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fleet-failover-"))
    work.chmod(0o755)  # PostgreSQL runs as its own user below it
    pg = LocalPostgres(
        root=work / "pg", settings={"fsync": "off", "synchronous_commit": "off", "max_connections": "50"}
    ).start()
    rows: list[tuple[str, str, str]] = []
    try:
        for scenario in args.scenarios:
            outcomes = []
            for i in range(args.repeat):
                run_dir = work / f"{scenario}-{i}"
                run_dir.mkdir()
                broker = PersistentMosquitto(run_dir)
                broker.start()
                try:
                    outcomes.append(
                        fleet_failover.run(
                            fresh_fleet_db(pg), broker, run_dir, scenario, gateways=args.gateways
                        )
                    )
                finally:
                    broker.stop()
            lost = sum(o.acked - o.ledger for o in outcomes)
            twice = sum(o.duplicate_readings for o in outcomes)
            readings_off = sum(o.readings - o.readings_sent for o in outcomes)
            seconds = [o.seconds for o in outcomes]
            rows += [
                (f"{scenario}: runs", str(len(outcomes)), ""),
                (f"{scenario}: messages acknowledged", str(sum(o.acked for o in outcomes)), ""),
                (f"{scenario}: lost", str(lost), "0"),
                (f"{scenario}: readings written twice", str(twice), "0"),
                (f"{scenario}: readings rows minus readings sent", str(readings_off), "0"),
                (
                    f"{scenario}: worker back with its session",
                    f"{sum(o.w2_session_back for o in outcomes)} of {len(outcomes)}"
                    if "worker" in scenario
                    else "-",
                    "all" if "worker" in scenario else "",
                ),
                (
                    f"{scenario}: s to the last row (median / worst)",
                    f"{statistics.median(seconds):.1f} / {max(seconds):.1f}",
                    "",
                ),
            ]
    finally:
        pg.remove()
    print_table(f"fleet failover, {args.gateways} gateways x 2 rounds", rows)


if __name__ == "__main__":
    main()
