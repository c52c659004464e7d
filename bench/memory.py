"""Memory of a whole building gateway: a real `lintel run` process, RSS after warm-up and peak.

    python -m bench.memory [--seconds 300] [--warmup 60] [--no-camera | --no-face] [--detector NAME]

The config is the demo building's (gateway/demo.py): Modbus meters on a simulated TCP gateway
(pymodbus, in this process), BLE door sensors on the simulated radio, simulated door contacts, the
lobby face entrance (door clip, YuNet + embedder) and the fire-lane clip, plus three more fire-lane
cameras on the same clip: 4 cameras with lanes and 1 face entrance. `--no-camera` drops every
camera (meters, BLE, doors only). RSS is read from /proc/PID/status (VmRSS every second, VmHWM for
the peak) of the daemon process only; the simulator runs here and is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import print_table
from gateway.demo import demo_camera_text, demo_config_text, demo_meter_server

ROOT = Path(__file__).resolve().parents[1]


def extra_cameras(state_dir: Path, count: int) -> str:
    """`count` more fire-lane cameras playing the demo's clip, each with its lane."""
    court = demo_camera_text(state_dir)
    if not court:
        raise SystemExit("memory: the demo clip needs scripts/fetch_media.sh")
    out = ""
    for i in range(2, 2 + count):
        out += court.replace("cam-court", f"cam-court{i}").replace("lane-court", f"lane-court{i}")
    return out


def config_text(state_dir: Path, port: int, cameras: bool, face: bool, detector: str | None) -> str:
    text = demo_config_text(state_dir, None, port)
    if not cameras:
        return text.split('\n[[sources]]\nid = "cam-court"')[0]
    if not face:
        text = text.split('\n[[sources]]\nid = "cam-lobby"')[0]
    text += extra_cameras(state_dir, 3)
    if detector:
        text += f'\n[vision]\ndetector = "{detector}"\n'
    return text


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


async def measure(args: argparse.Namespace) -> dict[str, float]:
    server = demo_meter_server()
    port = await server.start_tcp()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        config = Path(tmp) / "gateway.toml"
        config.write_text(config_text(state, port, not args.no_camera, not args.no_face, args.detector))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "lintel"), "run", "-c", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT,
        )  # fmt: skip
        samples: list[tuple[float, int]] = []
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < args.seconds:
                if proc.poll() is not None:
                    tail = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                    raise SystemExit(f"memory: lintel run exited {proc.returncode}: {tail}")
                samples.append((elapsed, status_kb(proc.pid, "VmRSS")))
                await asyncio.sleep(1.0)
            peak = status_kb(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            await server.stop()
    warm = [kb for t, kb in samples if t >= args.warmup]
    return {
        "after warm-up": (warm[0] if warm else samples[-1][1]) / 1024,
        "median after warm-up": sorted(warm)[len(warm) // 2] / 1024 if warm else 0.0,
        "end": samples[-1][1] / 1024,
        "peak (VmHWM)": peak / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--warmup", type=float, default=60)
    parser.add_argument("--no-camera", action="store_true", help="meters, BLE and doors only")
    parser.add_argument("--no-face", action="store_true", help="no face entrance (its share)")
    parser.add_argument("--detector", help="vision.detector (default: the config default)")
    args = parser.parse_args()
    figures = asyncio.run(measure(args))
    face = "" if args.no_face else " + 1 face entrance"
    what = (
        "no camera"
        if args.no_camera
        else f"4 fire-lane cameras{face} ({args.detector or 'default detector'})"
    )
    target = "≤ 60 MB" if args.no_camera else "≤ 200 MB"
    print_table(
        f"lintel run RSS, {what}, {args.seconds:g} s",
        [(f"RSS {k}", f"{v:.0f} MB", target if k.startswith("peak") else "") for k, v in figures.items()],
    )


if __name__ == "__main__":
    main()
