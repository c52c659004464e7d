"""A libmodbus Modbus TCP server (tests/support/libmodbus_server.c) built once with gcc and run on a
free loopback port: the peer for several requests in flight (pymodbus's server cannot pipeline)."""

from __future__ import annotations

import hashlib
import shutil
import signal
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).with_name("libmodbus_server.c")


def build() -> Path:
    """The server binary, compiled into .cache/ when its source changed (needs gcc and libmodbus-dev,
    which scripts/setup.sh --test installs)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    binary = ROOT / ".cache" / f"libmodbus-server-{digest}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        flags = subprocess.run(
            ["pkg-config", "--cflags", "--libs", "libmodbus"], check=True, capture_output=True, text=True
        ).stdout.split()
        tmp = binary.with_suffix(".tmp")
        subprocess.run([shutil.which("gcc") or "gcc", "-O2", "-o", str(tmp), str(SOURCE), *flags], check=True)
        tmp.replace(binary)
    return binary


class LibmodbusServer:
    """`units` meters (1..units) whose holding registers 0x2000.. and 0x4000.. hold, per float32 pair
    i, the value unit*100 + i + 0.5. `stop()` returns the requests served per unit."""

    def __init__(self, units: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc = subprocess.Popen(
            [str(build()), str(self.port), str(units)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("libmodbus server did not start")

    def stop(self) -> dict[int, int]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        served = {}
        for line in out.splitlines():
            if line.startswith("unit "):
                unit, count = line.removeprefix("unit ").split(": ")
                served[int(unit)] = int(count)
        return served
