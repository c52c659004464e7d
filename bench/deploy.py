"""What a config deployment costs: `lintel run` on mosquitto and a pymodbus bus, deployments sent
retained as the office sends them.

    python -m bench.deploy [--rounds 3] [--probation-s 1.5]

Per kind of deployment (applied by a restart: a broker setting; applied in the running process:
a log level; rolled back; refused): wall time from publishing to the reported outcome, the same
without the probation window (what the restart and checks cost), the gateway's CPU time over it
(the same pid across the re-exec: utime + stime from /proc), and the longest gap in the meter's
readings (0.5 s interval) around it. Quote CPU, not wall, on a loaded machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support import deploy_rig
from tests.support.broker import free_port
from tests.support.deploy_rig import Rig

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def readings_ms(rig: Rig) -> list[int]:
    found = []
    for m in rig.collector.data():
        for item in m.payload.get("readings", []) if isinstance(m.payload.get("readings"), list) else []:
            found.append(int(item["ts_ms"]))
    return sorted(found)


def one(rig: Rig, kind: str, text: str, probation_s: float) -> dict[str, Any]:
    body = rig.signed(rig.deployment(text))
    version = body["args"]["version"]
    cpu0, t0, ms0 = cpu_s(rig.proc.pid), time.monotonic(), time.time_ns() // 1_000_000
    rig.publish(body)
    outcome = (
        rig.outcome(version, timeout=120)
        if kind != "refused"
        else rig.commander.result_for(body["id"])["outcome"]
    )
    wall = time.monotonic() - t0
    if kind != "refused" and kind != "good, running":  # the birth of the process that runs afterwards
        rig.collector.wait_for(lambda _c: rig.last_birth()["ts_ms"] > ms0 + wall * 1000 - 1000, 30)
        time.sleep(1.5)  # readings after the restart, to see the gap close
    cpu = cpu_s(rig.proc.pid) - cpu0
    times = [t for t in readings_ms(rig) if t >= ms0 - 2000]
    gap = max((b - a for a, b in itertools.pairwise(times)), default=0) / 1000
    waited = 0.0 if kind == "refused" else probation_s
    return {
        "kind": kind,
        "outcome": outcome,
        "wall_s": wall,
        "less_probation_s": wall - waited,
        "cpu_s": cpu,
        "gap_s": gap,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--probation-s", type=float, default=1.5)
    args = parser.parse_args()
    deploy_rig.PROBATION_S = args.probation_s
    rows = []
    with tempfile.TemporaryDirectory(prefix="lintel-bench-deploy-") as tmp:
        rig = Rig(Path(tmp))
        try:
            time.sleep(2)
            for i in range(args.rounds):
                # A deployment is a whole document over the local file: the second one repeats the
                # first's broker setting, so only its log level differs from what runs.
                keepalive = f"[mqtt]\nkeepalive_s = {20 + i}\n"
                rows.append(one(rig, "good, restart", keepalive, args.probation_s))
                level = ("debug", "info")[i % 2]
                text = f"{keepalive}[log]\nlevel = '{level}'\n"
                rows.append(one(rig, "good, running", text, args.probation_s))
                rows.append(
                    one(
                        rig,
                        "rolled back",
                        f"[mqtt]\nurl = 'mqtt://127.0.0.1:{free_port()}'\n",
                        args.probation_s,
                    )
                )
                rows.append(one(rig, "refused", "[mqtt]\nkeepalive = 3\n", args.probation_s))
        finally:
            rig.close()
    head = ("deployment", "outcome", "wall s", "- probation", "CPU s", "readings gap s")
    print(f"{head[0]:<14} {head[1]:<20} {head[2]:>7} {head[3]:>11} {head[4]:>6} {head[5]:>15}")
    for r in rows:
        print(
            f"{r['kind']:<14} {r['outcome']:<20} {r['wall_s']:7.2f} {r['less_probation_s']:11.2f} "
            f"{r['cpu_s']:6.2f} {r['gap_s']:15.2f}"
        )
    print(f"machine load (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
