"""Peak RSS of a real `lintel run` whose camera sends 12000×12000 MJPEG frames, with and without the
resolution bound (issue 16 point 6).

    python -m bench.camera_bound [--seconds 8]

"unbounded" sets max_width = max_height = 16384 (the highest accepted), which is how the gateway
behaved before the bound: every frame decoded and converted to BGR. Needs ~1.2 GB free memory.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.conftest import gateway_toml
from tests.support.mjpeg_server import MjpegServer, jpeg
from tests.support.process import lintel, stop_and_show_log


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(server: MjpegServer, seconds: float, bound: str) -> float:
    with tempfile.TemporaryDirectory(prefix="lintel-bench-cam-") as tmp:
        sources = f"""
[[sources]]
id = "cam-big"
type = "camera"
url = "{server.url()}"
reconnect_initial_s = 0.3
reconnect_max_s = 1
{bound}
"""
        config = Path(tmp) / "lintel.toml"
        config.write_text(gateway_toml(Path(tmp) / "state", sources=sources))
        proc = lintel("run", "-c", str(config))
        try:
            time.sleep(seconds)  # a benchmark window, not a wait for a condition
            return peak_rss_mb(proc.pid)
        finally:
            stop_and_show_log(proc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    server = MjpegServer(jpeg(12000, 12000), interval_s=0.5).start()
    try:
        bounded = run(server, args.seconds, "")
        unbounded = run(server, args.seconds, "max_width = 16384\nmax_height = 16384")
    finally:
        server.stop()
    print(f"12000x12000 MJPEG camera, {args.seconds:g} s of lintel run, peak RSS (VmHWM):")
    print(f"  bounded (default 1920x1080, refused at open): {bounded:7.0f} MB")
    print(f"  unbounded (max 16384x16384, frames decoded):  {unbounded:7.0f} MB")


if __name__ == "__main__":
    main()
