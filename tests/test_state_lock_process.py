"""One daemon per state folder: a second `lintel run` (or `lintel demo`) on the same folder is
refused at start with the other daemon's pid, and the first one keeps running untouched; the tools
that only read (`status`, `doctor`) still work while it runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from gateway.cli.run import EXIT_BUSY
from tests.conftest import gateway_toml
from tests.support.outbox_db import assert_intact, last_seq
from tests.support.process import lintel, lintel_output, stop_and_show_log, wait_status

SOURCES = """
[[sources]]
id = "load-1"
type = "simulated"
profile = "load"
points = 20
interval_s = 0.05
"""


def write_config(tmp_path: Path, name: str = "lintel.toml") -> Path:
    text = gateway_toml(
        tmp_path / "state",
        sources=SOURCES,
        outbox={"commit_window_ms": 50},
        runtime={"status_interval_s": 0.3},
    )
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_second_daemon_on_the_same_state_folder_is_refused_and_the_first_keeps_running(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    # the same folder through a second config file: the lock is on the folder, not the file
    other_config = write_config(tmp_path, "other.toml")
    first = lintel("run", "-c", str(config))
    try:
        wait_status(config, lambda s: s["state"] == "running" and sum(s["outbox"]["rows"].values()) > 0)
        second = lintel("run", "-c", str(other_config))
        try:
            _, err = second.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # it started after all: stop it, and fail with its log
            stop_and_show_log(second)
            raise
        stderr = err.decode()
        folder = str((tmp_path / "state").resolve())
        assert second.returncode == EXIT_BUSY, stderr[-3000:]
        assert "Traceback" not in stderr, stderr[-3000:]
        assert f"pid {first.pid}" in stderr, stderr[-3000:]
        assert folder in stderr, stderr[-3000:]
        # `lintel demo` on that folder is refused before it writes its config there
        demo = lintel_output("demo", "--state-dir", folder, "--seconds", "1", "--plain", timeout=60)
        assert demo.returncode == EXIT_BUSY, demo.stderr[-3000:]
        assert f"pid {first.pid}" in " ".join(demo.stderr.split()), demo.stderr
        assert not (tmp_path / "state" / "config.toml").exists()
        # the first daemon is still running, still writing, and its status is its own
        before = last_seq(tmp_path / "state" / "outbox.db")
        status = wait_status(config, lambda s: s["state"] == "running" and s["pid"] == first.pid)
        assert first.poll() is None
        # the tools that only read work while it runs
        shown = lintel_output("status", "-c", str(config), "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["status"]["pid"] == first.pid
        doctor = lintel_output("doctor", "-c", str(config), "--json", "--timeout", "2", timeout=60)
        assert "Traceback" not in doctor.stderr, doctor.stderr[-3000:]
        checks = {f["check"] for f in json.loads(doctor.stdout)["findings"]}
        assert "state_dir" in checks, checks
        wait_status(config, lambda s: last_seq(tmp_path / "state" / "outbox.db") > before)
        assert status["state"] == "running"
    finally:
        stop_and_show_log(first)
    assert first.returncode == 0
    assert_intact(tmp_path / "state" / "outbox.db")
    # once the first has stopped, the folder is free again
    again = lintel("run", "-c", str(other_config))
    try:
        wait_status(other_config, lambda s: s["state"] == "running" and s["pid"] == again.pid)
    finally:
        stop_and_show_log(again)
    assert again.returncode == 0
