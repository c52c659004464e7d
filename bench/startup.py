"""Start-up cost of a gateway without cameras: time to READY, RSS, log lines, heavy libraries.

Runs a real `lintel run` with Modbus meters (a pymodbus simulator on loopback) and a BLE adapter
(bleak over the mocked BlueZ of the test suite) and a mosquitto broker, as systemd would: with a
NOTIFY_SOCKET, timing from exec to `READY=1`. Then samples RSS for `--seconds` and prints one table.

    python -m bench.startup --seconds 60 --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import Broker, print_table
from drivers.modbus.simulator import MeterServer, SimulatedMeter
from tests.support.bluez import MockBluez
from tests.support.notify import NotifySocket

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("cv2", "onnxruntime", "numpy")


def config_text(state: Path, broker: int, modbus: int) -> str:
    return f"""
[gateway]
id = "gw-bench"
site = "site-a"
state_dir = "{state}"
runtime_dir = "{state / "run"}"

[mqtt]
url = "mqtt://127.0.0.1:{broker}"

[[sources]]
id = "bus-1"
type = "modbus"
endpoint = "tcp://127.0.0.1:{modbus}"
interval_s = 1

[[sources.meters]]
id = "flat-101"
unit = 1
profile = "eastron_sdm120"

[[sources.meters]]
id = "water-101"
unit = 2
profile = "generic_water"

[[sources]]
id = "ble-hall"
type = "ble"
adapter = "hci0"

[[sources.sensors]]
id = "window-1"
address = "58:2D:34:40:3A:4D"
model = "CGH1"
"""


class MeterThread:
    def __init__(self) -> None:
        meters = [SimulatedMeter(1, "eastron_sdm120"), SimulatedMeter(2, "generic_water")]
        self.server = MeterServer(list(meters))
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.port = asyncio.run_coroutine_threadsafe(self.server.start_tcp(), self.loop).result(10)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def heavy_loaded(pid: int) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [lib for lib in HEAVY if f"/{lib}/" in maps or f"lib{lib}" in maps]


def one_run(folder: Path, broker: Broker, meters: MeterThread, bluez: MockBluez, seconds: float) -> dict:
    folder.mkdir(parents=True)
    state = folder / "state"
    config = folder / "lintel.toml"
    config.write_text(config_text(state, broker.port, meters.port))
    notify = NotifySocket(folder / "notify.sock")
    env = {**os.environ, **bluez.env(), "NOTIFY_SOCKET": str(notify.path), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "run", "-c", str(config)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = notify.wait_for("READY", 30)
    ready_s = time.monotonic() - started if ready else float("nan")
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        samples.append(rss_mb(proc.pid))
        time.sleep(1.0)
    heavy = heavy_loaded(proc.pid) if proc.poll() is None else ["(exited)"]
    proc.terminate()
    _, err = proc.communicate(30)
    notify.close()
    errors = [line for line in err.splitlines() if " ERROR " in line or "Traceback" in line]
    return {"ready_s": ready_s, "rss_end": samples[-1] if samples else 0.0, "heavy": heavy, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="RSS sampling per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    broker = Broker()
    meters = MeterThread()
    with tempfile.TemporaryDirectory(prefix="lintel-bench-startup-") as tmp:
        bluez = MockBluez(Path(tmp) / "bluez").start()
        try:
            runs = [
                one_run(Path(tmp) / f"run{i}", broker, meters, bluez, args.seconds) for i in range(args.runs)
            ]
        finally:
            bluez.stop()
            broker.stop()
    for run in runs:
        for line in run["errors"]:
            print("ERROR line:", line)
    ready = [r["ready_s"] for r in runs]
    rss = [r["rss_end"] for r in runs]
    print_table(
        f"start-up, meters + BLE, no camera ({args.runs} runs, RSS after {args.seconds:.0f} s)",
        [
            ("exec → READY=1, median", f"{statistics.median(ready):.2f} s", "≤ 1 s"),
            ("exec → READY=1, worst", f"{max(ready):.2f} s", ""),
            ("RSS, median", f"{statistics.median(rss):.1f} MB", "≤ 60 MB"),
            ("RSS, worst", f"{max(rss):.1f} MB", ""),
            (
                "heavy libraries loaded",
                ", ".join(sorted({h for r in runs for h in r["heavy"]})) or "none",
                "none",
            ),
            ("ERROR lines", str(sum(len(r["errors"]) for r in runs)), "0"),
        ],
    )


if __name__ == "__main__":
    main()
