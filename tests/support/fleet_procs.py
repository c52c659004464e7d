"""The fleet's processes for tests and bench/fleet_load.py: a mosquitto that persists its sessions
(the fleet's broker must), `lintel-fleet ingest` workers and the catch-up session, as systemd would
start them (the real entry point, each with its own log file in the test's folder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.broker import Mosquitto
from tests.support.fleet_sim import ROOT


@dataclass
class PersistentMosquitto(Mosquitto):
    """mosquitto keeping sessions and queued messages across a restart (saved on a clean stop)."""

    def write_conf(self) -> None:
        super().write_conf()
        store = self.workdir / f"mosquitto-{self.port}-data"
        store.mkdir(exist_ok=True)
        text = self.conf.read_text().replace(
            "persistence false", f"persistence true\npersistence_location {store}/\nautosave_interval 1"
        )
        self.conf.write_text(text)

    def restart(self) -> None:
        """A clean restart: SIGTERM (mosquitto saves its state), then start again on the same port."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.proc = None
        self.start()


def _fleet(
    command: str, dsn: str, broker_port: int, name: str, log_dir: Path, *argv: str
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleet.cli",
            command,
            "--db",
            dsn,
            "--broker",
            f"mqtt://127.0.0.1:{broker_port}",
            *argv,
        ],
        stdout=log,
        stderr=log,
        env=env,
    )


def start_worker(
    dsn: str, broker_port: int, worker_id: str, log_dir: Path, *extra: str
) -> subprocess.Popen[bytes]:
    """One `lintel-fleet ingest` process; its log is `<worker_id>.log` in `log_dir`."""
    return _fleet("ingest", dsn, broker_port, worker_id, log_dir, "--worker-id", worker_id, *extra)


def start_catchup(
    dsn: str, broker_port: int, log_dir: Path, catchup_id: str = "fleet-catchup", *extra: str
) -> subprocess.Popen[bytes]:
    """The fleet's `lintel-fleet catchup` session; its log is `<catchup_id>.log` in `log_dir`."""
    return _fleet("catchup", dsn, broker_port, catchup_id, log_dir, "--id", catchup_id, *extra)


def wait_logged(log_dir: Path, name: str, text: str, count: int = 1, timeout_s: float = 60) -> str:
    """Wait until `<name>.log` holds `text` at least `count` times; returns the log."""
    deadline = time.monotonic() + timeout_s
    log = log_dir / f"{name}.log"
    while True:
        content = log.read_text() if log.exists() else ""
        if content.count(text) >= count:
            return content
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not log {text!r} {count} time(s): {content[-2000:]}")
        time.sleep(0.05)


def wait_subscribed(log_dir: Path, *worker_ids: str, timeout_s: float = 60) -> None:
    """Wait until each process's log says its subscription is in place (a subscription receives
    only what is published after it exists)."""
    deadline = time.monotonic() + timeout_s
    for wid in worker_ids:
        wait_logged(log_dir, wid, "subscribed to ", timeout_s=max(deadline - time.monotonic(), 0.1))


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
