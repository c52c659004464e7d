"""Cost of the building at a glance and of per-device health, on a busy building.

Runs a real daemon (in process) with `--devices` simulated meters and door sensors and `--alarms`
threshold rules that all fire, then measures what the screen and the status cost each refresh:
building the typed report (device reports included), rendering the dashboard into 80×24, and the
bytes per device that status.json and the upstream `stats` message grow by.

    python -m bench.dashboard --devices 60 --alarms 40
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench.common import print_table
from gateway.cli.dashboard import render
from gateway.config import LoadedConfig, parse_config
from gateway.runtime import report as rp
from gateway.runtime.daemon import Daemon
from tests.conftest import gateway_toml


def config_text(state: Path, devices: int, alarms: int) -> str:
    sources = "".join(
        f'\n[[sources]]\nid = "d{i:03d}"\ntype = "simulated"\n'
        f'profile = "{"door_sensor" if i % 2 else "electricity_meter"}"\ninterval_s = 0.5\n'
        for i in range(devices)
    )
    rules = "".join(
        f'\n[[rules]]\nid = "r{i:03d}"\ntype = "threshold"\nsource = "d000"\npoint = "power_w"\nabove = 0\n'
        for i in range(alarms)
    )
    return gateway_toml(state, sources=sources + rules)


def median_ms(fn: object, runs: int) -> float:
    assert callable(fn)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=60)
    ap.add_argument("--alarms", type=int, default=40)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        parsed = parse_config(config_text(state, args.devices, args.alarms).encode(), "bench", state)
        daemon = Daemon(LoadedConfig(parsed.config, None, state, parsed.sha256))
        figures: dict[str, float] = {}

        async def run() -> None:
            runner = asyncio.create_task(daemon.run())
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                report = daemon.report()
                if len(report.alarms) >= args.alarms and all(d.online for d in report.devices):
                    break
                await asyncio.sleep(0.1)
            report = daemon.report()
            screen = Console(file=io.StringIO(), width=80, height=24, force_terminal=True)
            figures["report_ms"] = median_ms(daemon.report, args.runs)
            figures["render_ms"] = median_ms(lambda: screen.print(render(report)), args.runs)
            status = json.dumps(rp.to_json(report))
            without = json.dumps({**rp.to_json(report), "devices": []})
            figures["status_bytes"] = len(status)
            figures["per_device_bytes"] = (len(status) - len(without)) / max(len(report.devices), 1)
            figures["stats_bytes"] = len(json.dumps(rp.to_json(report.stats())))
            figures["devices"] = len(report.devices)
            figures["alarms"] = len(report.alarms)
            daemon.request_stop()
            await runner

        asyncio.run(run())
    print_table(
        f"dashboard: {figures['devices']:.0f} devices, {figures['alarms']:.0f} open alarms, 80×24",
        [
            ("typed report (devices included), median", f"{figures['report_ms']:.2f} ms", "< 10 ms"),
            (
                "dashboard render into 80×24, median",
                f"{figures['render_ms']:.2f} ms",
                "< 50 ms (1 s refresh)",
            ),
            ("status.json", f"{figures['status_bytes'] / 1024:.1f} KiB", "tmpfs, rewritten every 2 s"),
            ("per device in status.json / stats", f"{figures['per_device_bytes']:.0f} B", "< 600 B"),
            ("stats message", f"{figures['stats_bytes'] / 1024:.1f} KiB", "< 256 KiB (one MQTT message)"),
        ],
    )


if __name__ == "__main__":
    main()
