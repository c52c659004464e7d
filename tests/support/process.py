"""Running `lintel` as a real child process."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.core.errors import ConfigError
from gateway.runtime.status_file import read_status
from tests.support.outbox_db import assert_intact, last_seq

ROOT = Path(__file__).resolve().parents[2]


def lintel(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", *args],
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
    """Poll the daemon's status file (what `lintel status --json` shows as `status`) until
    predicate(status) holds. Read here, not through a `lintel status` child per poll: each of
    those cost half a second of CPU on the machine the daemon under test shares."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        try:  # the file as `lintel status` finds it: the config may change (or break) mid-test
            path = load_config(config, check_files=False).status_path
        except ConfigError:
            path = None
        if path is not None:
            last, _age = read_status(path, time.time())
            if last and predicate(last):
                return last
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


def kill_9_while_committing(
    config: Path, db: Path, times: int, rng: random.Random, *, rows: int, after_s: tuple[float, float]
) -> None:
    """`lintel run` killed -9 `times` times while it accepts under load: each run is killed once it
    has committed more than `rows` new records (a CPU-starved machine may take longer to start than
    any fixed sleep), at a random moment `after_s` after that. The outbox passes SQLite's
    integrity check after every kill."""
    for _ in range(times):
        before = last_seq(db)
        proc = lintel("run", "-c", str(config))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and last_seq(db) <= before + rows:
            time.sleep(0.05)
        time.sleep(rng.uniform(*after_s))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if db.exists():
            assert_intact(db)
