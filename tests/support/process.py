"""Running `lintel` as a real child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


# A gateway is the one program of note on its Pi. On a test machine it shares the cores with every
# other test (and `stress-ng` in the load check), so a test that holds it to a latency a resident
# or an operator would notice (a door's answer) runs it with this much more CPU weight than that
# load: the bound then measures the gateway's own work, not the machine's queue. Its own threads
# (inference, parsing a flood) still compete with each other as on the Pi. Needs root (CAP_SYS_NICE);
# without it `nice` warns and the gateway runs at the usual weight.
GATEWAY_NICE = -10


def lintel(
    *args: str, env: dict[str, str] | None = None, own_cpu: bool = False, **kw: Any
) -> subprocess.Popen[bytes]:
    """`lintel ARGS` as a child process; `own_cpu`: as the only program on its machine (GATEWAY_NICE)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    prefix = ["nice", "-n", str(GATEWAY_NICE)] if own_cpu else []
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "gateway.cli.main", *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def lintel_output(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_status(config: Path, predicate: Any, timeout: float = 20) -> dict[str, Any]:
    """Poll `lintel status --json` until predicate(status) holds."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        out = lintel_output("status", "--json", "-c", str(config))
        if out.stdout:
            last = json.loads(out.stdout)
            if last.get("status") and predicate(last["status"]):
                return last["status"]
        time.sleep(0.2)
    raise AssertionError(f"status never matched: {last}")


def stop_and_show_log(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then wait reading both pipes (an unread pipe that fills up blocks the daemon's
    logging, and with it the daemon). If it does not stop in time, fail with its log's tail."""
    proc.terminate()
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(
            f"lintel did not stop within {timeout:g} s; log tail:\n{err.decode()[-4000:]}"
        ) from None
