"""How many bytes the `lanes` section adds to the upstream `stats` message.

Runs `lintel demo` (meters, BLE sensors, a door relay, a fire lane camera, a face entrance, care) until
its status.json reports every lane, then encodes the stats body from it twice: without and with
`lanes`. Also the bound: a building with MAX_ITEMS doors, fire lanes, entrances and households, every
free text at MAX_TEXT characters (what `gateway/runtime/lane_summary.py` lets through at most).

    python -m bench.stats_size [--seconds 90]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway.runtime import report as rp
from gateway.runtime.lane_summary import MAX_ITEMS, MAX_TEXT, summarise

ROOT = Path(__file__).resolve().parents[1]
LANES = ("doors", "fire_lanes", "face_access", "care")


def demo_status(seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "demo"
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "demo", "--plain", "--state-dir", str(state)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(1)
                for path in state.rglob("status.json"):
                    try:
                        status: dict[str, object] = json.loads(path.read_text())
                    except (OSError, ValueError):
                        continue
                    lanes = status.get("lanes")
                    if isinstance(lanes, dict) and all(name in lanes for name in LANES):
                        return status
            raise SystemExit(f"the demo did not report all of {LANES} within {seconds:g} s")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)


def size(body: object) -> int:
    return len(json.dumps(body, separators=(",", ":")).encode())


def worst_case() -> int:
    text = "x" * 1000
    door = {"id": "d" * 64, "relay": "releasing", "pulses": 2**31, "failures": 2**31, "fault": text}
    lane = {"lane": "l" * 64, "camera": "c" * 64, "state": "violation", "alarm_open": True, "dwell_s": 2**31}
    entrance = {
        "id": "e" * 64, "camera": "c" * 64, "door": "d" * 64, "camera_online": True, "locked": True,
        "granted": 2**31, "denied": 2**31, "last_decision_ms": 2**45, "last_granted": False,
        "last_reason": text,
    }  # fmt: skip
    household = {"id": "h" * 64, "missing_data": ["m" * 64] * 8}
    n = MAX_ITEMS + 1  # one more than the bound: cut, and counted in `omitted`
    lanes = {
        "doors": {"doors": [door] * n},
        "fire_lanes": {"lanes": [{**lane, "reason": text}] * n},
        "face_access": {"residents": 10_000, "entrances": [entrance] * n},
        "care": {"households": [household] * n},
    }
    return size(rp.to_json(summarise(lanes, {name: text for name in ("rules", *LANES)})))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90, help="how long to wait for the demo's lanes")
    args = parser.parse_args()
    stats = rp.read_report(demo_status(args.seconds)).stats()
    body = rp.to_json(stats)
    after = size(body)
    summary = body.pop("lanes")
    before = size(body)  # what a gateway without the section publishes
    counts = {k: len(v) for k, v in summary.items() if isinstance(v, list)}
    print(f"demo building stats body: {before} B without lanes, {after} B with (+{after - before} B)")
    print(f"  lanes section: {counts}, unavailable {sorted(summary['unavailable'])}")
    print(f"bound: lanes section at most {worst_case()} B ({MAX_ITEMS} per kind, texts of {MAX_TEXT} chars)")


if __name__ == "__main__":
    main()
