"""kill -9 of `lintel run` under load, many times: the soak behind tests/test_process.py's
`test_kill_9_under_load_loses_no_accepted_record` (which kills 3 times per configuration).

    .venv/bin/python -m bench.kill9 [--kills 30] [--seed 7] [--configs native both_bridges]

Per configuration (native only; both bridges on, Sparkplug at QoS 1): a real mosquitto, a counting
subscriber, `lintel run` with a 100-point load source killed -9 `--kills` times at a random moment
0-1.4 s after it committed 5 new records (SQLite's integrity check after each kill), then one more
start drains. Prints accepted seqs, lost (gaps), gaps not counted as dropped, duplicates (against
the 100-message in-flight window per kill), crash births and the seconds it took.
Targets: 0 lost, gaps = counted drops, duplicates <= 100 x kills.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import print_table
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.test_process import BOTH_BRIDGES, kill_9_run

CONFIGS = {"native": "", "both_bridges": BOTH_BRIDGES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    for name in args.configs:
        work = Path(tempfile.mkdtemp(prefix=f"lintel-kill9-{name}-"))
        broker = Mosquitto(work)
        broker.start()
        collector = Collector(broker.port).start()
        started = time.monotonic()
        try:
            run = kill_9_run(work, broker, collector, CONFIGS[name], args.kills, random.Random(args.seed))
        finally:
            collector.stop()
            broker.stop()
        seconds = time.monotonic() - started
        shutil.rmtree(work, ignore_errors=True)
        rows += [
            (f"{name}: kills", str(args.kills), ""),
            (f"{name}: accepted seqs", str(run.accepted), ""),
            (f"{name}: lost (gaps)", str(run.gaps), "0"),
            (f"{name}: gaps minus counted drops", str(run.gaps - run.dropped), "0"),
            (f"{name}: duplicates", str(run.duplicates), f"<= {100 * args.kills}"),
            (f"{name}: births after a crash", str(run.crash_births), ">= 1"),
            (f"{name}: Sparkplug DDATA rows, all arrived", str(run.bridge_rows), ""),
            (f"{name}: seconds", f"{seconds:.0f}", ""),
        ]
    print_table(f"kill -9 under load, {args.kills} kills per configuration", rows)


if __name__ == "__main__":
    main()
