"""The building at a glance, seen the way a technician sees it: in a real 80×24 terminal (tmux).

`lintel demo` and `lintel status --watch` run inside a detached tmux session of exactly 80 columns
by 24 rows; `tmux capture-pane -p` reads what is on screen. Every panel title must be there, the
footer must not have scrolled away, and every open alarm id the daemon reports (its status.json,
read through `lintel status --json`) must be on screen, even when there are more alarms than rows.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.cli.dashboard import TITLES
from tests.conftest import gateway_toml
from tests.support.process import ROOT, lintel, lintel_output, stop_and_show_log

ALARM_ID = re.compile(r"#(\d+)\b")


class Pane:
    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, timeout=10
        )

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "glance").stdout

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "glance").returncode == 0

    def wait(self, what: str, check: Callable[[str], bool], timeout: float = 30) -> str:
        """The screen once `check(screen)` holds; fails with the last screen after `timeout`."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            time.sleep(0.3)
        raise AssertionError(f"{what} never on screen; last screen:\n{screen}")


@contextmanager
def terminal(tmp_path: Path, command: str) -> Iterator[Pane]:
    """`command` (exec'd, from the repository root) in an 80×24 tmux pane; Ctrl-C and tear-down at exit."""
    assert shutil.which("tmux"), "tmux is missing: run scripts/setup.sh --test"
    pane = Pane(tmp_path / "tmux.sock")
    started = pane.tmux(
        "new-session", "-d", "-x", "80", "-y", "24", "-s", "glance", "-c", str(ROOT), f"exec {command}"
    )
    assert started.returncode == 0, started.stderr
    try:
        yield pane
        pane.tmux("send-keys", "-t", "glance", "C-c")
        deadline = time.monotonic() + 20
        while pane.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pane.alive(), "the program did not stop on Ctrl-C"
    finally:
        pane.tmux("kill-server")


def lintel_cmd(*args: str) -> str:
    return " ".join([f"env PYTHONPATH={ROOT}", sys.executable, "-m", "gateway.cli.main", *args])


def status_of(config: Path) -> dict[str, object]:
    out = lintel_output("status", "--json", "-c", str(config))
    body: dict[str, object] = json.loads(out.stdout)
    return body


def fits(screen: str) -> bool:
    lines = screen.rstrip("\n").split("\n")
    return len(lines) <= 24 and all(len(line) <= 80 for line in lines)


def test_demo_shows_the_whole_building_in_80x24_and_status_can_be_pointed_at_it(tmp_path: Path) -> None:
    # A short state dir, as a user's `var/demo` is: the screen's `lintel status -c …` fits in 80 columns.
    state = Path(tempfile.mkdtemp(prefix="glance-")) / "demo"
    try:
        _demo_screen(tmp_path, state)
    finally:
        shutil.rmtree(state.parent, ignore_errors=True)


def _demo_screen(tmp_path: Path, state: Path) -> None:
    with terminal(tmp_path, lintel_cmd("demo", "--seconds", "60", "--state-dir", str(state))) as pane:
        # The dead meter of the demo (unit 5) is flagged once its breaker has opened.
        screen = pane.wait(
            "every panel and the dead meter",
            lambda s: all(t in s for t in TITLES) and "meter-2c OFFLINE since" in s and "Ctrl-C" in s,
        )
        assert fits(screen), screen
        assert f"lintel status -c {state / 'config.toml'}" in screen.replace("\n", "")
        config = state / "config.toml"
        assert config.is_file()
        # What the screen says is true: the written config points `lintel status` at this demo.
        deadline = time.monotonic() + 10  # status.json is rewritten every 2 s: the first may be due
        while (status := status_of(config))["running"] is not True and time.monotonic() < deadline:
            time.sleep(0.3)
        assert status["running"] is True, status
        body = status["status"]
        assert isinstance(body, dict)
        assert {d["device_id"] for d in body["devices"]} >= {"meter-1a", "meter-2c", "door-1a", "door-front"}
        # Every alarm the daemon has open is on screen (the screen is redrawn 4 times a second).
        ids = {a["alarm_id"] for a in body["alarms"]}
        pane.wait(f"alarms {sorted(ids)}", lambda s: ids <= set(ALARM_ID.findall(s)), timeout=5)
        # Readings are rounded to their meaningful precision, with units.
        assert re.search(r"meter-1a +\d+ W \d+\.\d\d kWh", screen), screen
        assert re.search(r"water-1 +\d+\.\d{3} m³", screen), screen


def test_status_watch_shows_every_alarm_when_they_outnumber_the_rows(tmp_path: Path) -> None:
    # 30 threshold rules on a simulated meter whose power is always above 0: 30 open alarms, more
    # than the 24 rows; and a door sensor.
    rules = "".join(
        f'\n[[rules]]\nid = "r{i:02d}"\ntype = "threshold"\nsource = "m1"\npoint = "power_w"\nabove = 0\n'
        for i in range(30)
    )
    sources = """
[[sources]]
id = "m1"
type = "simulated"
profile = "electricity_meter"
interval_s = 0.5

[[sources]]
id = "d1"
type = "simulated"
profile = "door_sensor"
interval_s = 0.5
"""
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(tmp_path / "state", sources=sources + rules, extra=""))
    daemon = lintel("run", "-c", str(config))
    try:
        deadline = time.monotonic() + 20
        ids: set[str] = set()
        while len(ids) < 30 and time.monotonic() < deadline:
            body = status_of(config).get("status")
            ids = {a["alarm_id"] for a in body["alarms"]} if isinstance(body, dict) else set()
            time.sleep(0.3)
        assert len(ids) == 30, ids
        with terminal(tmp_path, lintel_cmd("status", "--watch", "-c", str(config))) as pane:
            screen = pane.wait(
                "every panel and all 30 alarms",
                lambda s: all(t in s for t in TITLES) and set(ALARM_ID.findall(s)) == ids,
                timeout=15,
            )
            assert fits(screen), screen
            assert "30 open" in screen and "lintel status --watch" in screen, screen
            assert re.search(r"m1 +\d+ W \d+\.\d\d kWh", screen), screen
            # The daemon stops: the screen says so (and keeps the last status) instead of going blank.
            stop_and_show_log(daemon)
            pane.wait(
                "NOT RUNNING", lambda s: "NOT RUNNING" in s and set(ALARM_ID.findall(s)) == ids, timeout=10
            )
    finally:
        stop_and_show_log(daemon)
