"""The doors' switch-off at stop, beside other lanes: `lintel run` with three lane components (doors,
care, rules) is sent SIGTERM mid-pulse `--runs` times (5) while the relay module's TCP gateway
answers "target failed to respond" for `--silent-s` (2 s) from that moment. Prints how often the
coil ended off at the board, when, the lanes stage and the whole stop, the "did not stop" lines,
and the gateway's CPU per run (its process, from getrusage: quote this on a loaded machine).

A `--silent-s` beyond the doors' budget (3 s) shows the other side: the lanes stage holds at the
budget, the coil stays on, and the doors raise their fault before the outbox closes.

    .venv/bin/python -m bench.door_stop [--runs 5] [--silent-s 2]
"""

from __future__ import annotations

import argparse
import re
import resource
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import print_table
from drivers.modbus.simulator import SimulatedMeter
from gateway.lanes.doors.config import DOOR_STOP_BUDGET_S
from tests.conftest import gateway_toml
from tests.support.configs import door_toml, meter_bus_toml, threshold_rule_toml
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel
from tests.test_doors_stop_budget import CARE, SilentRelayModule, door_state, pulse, wait_for

STAGE = re.compile(r"shutdown: lanes stopped in ([0-9.]+) s")


def one_stop(tmp: Path, silent_s: float) -> dict[str, Any]:
    board = SilentRelayModule(unit=9)
    server = ModbusThread([SimulatedMeter(unit=1, profile="eastron_sdm120"), board]).start()
    try:
        state = tmp / "state"
        sources = (
            meter_bus_toml(server.port, interval_s=1)
            + door_toml(coil=0, pulse_s=20, timeout_ms=300)
            + threshold_rule_toml("m1", above=1e9)
            + CARE
        )
        config = tmp / "lintel.toml"
        runtime = {"status_interval_s": 0.2, "shutdown_timeout_s": 10}
        config.write_text(gateway_toml(state, sources=sources, runtime=runtime))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = lintel("run", "-c", str(config))
        wait_for(lambda: door_state(state) == "released", 30, "the door to report its relay released")
        results: list[dict[str, Any]] = []
        thread = threading.Thread(target=pulse, args=(state / "run" / "control.sock", results))
        thread.start()
        wait_for(lambda: board.states()[0], 10, "the pulse")
        sent = time.monotonic()
        board.silent_until = sent + silent_s
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        exited = time.monotonic()
        thread.join(10)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        server.stop()
    log = err.decode()
    off = [t for t, coil, on in board.switches if coil == 0 and not on and t >= sent]
    stage = STAGE.search(log)
    return {
        "rc": proc.returncode,
        "coil_off": not board.states()[0],
        "off_after_s": off[-1] - sent if off and not board.states()[0] else None,
        "stop_s": exited - sent,
        "lanes_s": float(stage.group(1)) if stage else float("nan"),
        "did_not_stop": sum("did not stop" in line for line in log.splitlines()),
        "faults": sum(
            "door_relay_fault" in line or "the switch-off failed" in line for line in log.splitlines()
        ),
        "recovered": sum("relay released again" in line for line in log.splitlines()),
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    }


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--silent-s", type=float, default=2.0)
    args = parser.parse_args()
    runs = [
        one_stop(Path(tempfile.mkdtemp(prefix="lintel-bench-doorstop-")), args.silent_s)
        for _ in range(args.runs)
    ]
    n = len(runs)
    expected = f"{n}" if args.silent_s < DOOR_STOP_BUDGET_S else "0 (silent past the doors' budget)"
    print_table(
        f"bench/door_stop: {n} x SIGTERM mid-pulse, doors + care + rules, relay silent {args.silent_s:g} s "
        "(shutdown_timeout_s 10, doors' budget 3 s)",
        [
            ("coil off at the board after the stop", f"{sum(r['coil_off'] for r in runs)} of {n}", expected),
            ("exit codes", ", ".join(sorted({str(r["rc"]) for r in runs})), "0"),
            (
                "SIGTERM to coil off",
                spread([r["off_after_s"] for r in runs if r["off_after_s"] is not None]),
                "",
            ),
            ("lanes stage", spread([r["lanes_s"] for r in runs]), "<= 3 s + one attempt"),
            ("SIGTERM to exit", spread([r["stop_s"] for r in runs]), "< 10 s"),
            ('"did not stop" lines', f"{sum(r['did_not_stop'] for r in runs)}", "0"),
            ("door_relay_fault log lines", f"{sum(r['faults'] for r in runs)}", ""),
            ("door_relay_recovered log lines", f"{sum(r['recovered'] for r in runs)}", ""),
            ("gateway CPU per run (start, pulse, stop)", spread([r["cpu_s"] for r in runs]), ""),
        ],
        width=110,
    )


if __name__ == "__main__":
    main()
