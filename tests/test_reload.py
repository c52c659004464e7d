"""A reload that cannot escalate, in-process against a real config file and state folder: remote
text may change tunables only (and names no file it could make the gateway read), what it changes
is kept in the overlay and survives a restart until the installer edits the local file, and a
reload that cannot be kept changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.config.overlay import apply_overlay
from gateway.core.commands import Failed, Rejected
from gateway.runtime.daemon import Daemon
from tests.conftest import gateway_toml
from tests.support.configs import threshold_rule_toml

HOUSEHOLD = """
[care]
[[care.households]]
id = "{hid}"
electricity_meter = "sim"
"""


def local_text(tmp_path: Path, above: float = 100, households: tuple[str, ...] = ("flat-1",)) -> str:
    sources = '[[sources]]\nid = "sim"\ntype = "simulated"\ninterval_s = 0.1\n'
    text = gateway_toml(tmp_path / "state", sources=sources)
    text += "".join(HOUSEHOLD.format(hid=h) for h in households[:1])
    return text + threshold_rule_toml("sim", above, rule_id="hot")


def running(tmp_path: Path, body: Callable[[Daemon], Awaitable[Any]]) -> Any:
    config = tmp_path / "lintel.toml"
    daemon = Daemon(apply_overlay(load_config(config)))

    async def main() -> Any:
        runner = asyncio.create_task(daemon.run())
        while daemon.state != "running":
            await asyncio.sleep(0.01)
        try:
            return await body(daemon)
        finally:
            daemon.request_stop()
            await runner

    return asyncio.run(asyncio.wait_for(main(), 60))


def rules_above(daemon: Daemon) -> float:
    return float(daemon.loaded.config.rules[0].above or 0)


def test_remote_tunables_survive_a_restart_until_the_local_file_changes(tmp_path: Path) -> None:
    config = tmp_path / "lintel.toml"
    config.write_text(local_text(tmp_path))
    local = config.read_bytes()

    async def tune(daemon: Daemon) -> dict[str, Any]:
        return await daemon.reload(local_text(tmp_path, above=5000), None)

    result = running(tmp_path, tune)
    assert result["changed"] is True
    assert config.read_bytes() == local  # the installer's file is never rewritten remotely

    async def above(daemon: Daemon) -> float:
        return rules_above(daemon)

    assert running(tmp_path, above) == 5000  # the restart keeps the remote tunable
    config.write_text(local_text(tmp_path, above=200))  # the installer edits the file
    assert running(tmp_path, above) == 200
    assert not (tmp_path / "state" / "config.overlay.toml").exists()


@pytest.mark.parametrize(
    ("change", "section"),
    [
        (lambda t: t.replace("interval_s = 0.1", "interval_s = 0.2"), "sources"),
        (
            lambda t: (
                t + '\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\nusername = "gw"\npassword_file = "/etc/shadow"\n'
            ),
            "mqtt",
        ),
        (lambda t: t + '\n[commands]\nallow = ["door_pulse"]\n', "commands"),
        (lambda t: t + "\n[bridges.home_assistant]\nenabled = true\n", "bridges"),
    ],
)
def test_remote_text_beyond_tunables_is_refused_without_reading_what_it_names(
    tmp_path: Path, change: Callable[[str], str], section: str
) -> None:
    config = tmp_path / "lintel.toml"
    config.write_text(local_text(tmp_path))

    async def attempt(daemon: Daemon) -> str:
        with pytest.raises(Rejected) as refused:
            await daemon.reload(change(local_text(tmp_path)), None)
        assert rules_above(daemon) == 100
        return str(refused.value)

    reason = running(tmp_path, attempt)
    assert reason.startswith(f"not tunable remotely: {section}")
    assert "shadow" not in reason and "does not" not in reason


def test_a_reload_that_cannot_be_kept_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "lintel.toml"
    config.write_text(local_text(tmp_path))
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / "config.overlay.toml").mkdir()  # the overlay cannot be written

    async def attempt(daemon: Daemon) -> tuple[float, list[str], list[str]]:
        before = [type(p).__name__ for p in daemon.core.pipeline.processors]
        with pytest.raises(Failed):
            await daemon.reload(local_text(tmp_path, above=5000, households=()), None)
        after = [type(p).__name__ for p in daemon.core.pipeline.processors]
        return rules_above(daemon), before, after

    above, before, after = running(tmp_path, attempt)
    assert above == 100 and before == after and "CareWatch" in after


def test_a_local_reload_that_switches_a_bridge_on_needs_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "lintel.toml"
    config.write_text(local_text(tmp_path))

    async def attempt(daemon: Daemon) -> tuple[str, int]:
        config.write_text(local_text(tmp_path) + "\n[bridges.home_assistant]\nenabled = true\n")
        with pytest.raises(Rejected) as refused:
            await daemon.reload(None, None)
        return str(refused.value), len(daemon.core.encoder.bridges.items)

    reason, bridges = running(tmp_path, attempt)
    assert reason.startswith("needs a restart to change: bridges") and bridges == 0


def test_a_reload_that_fails_leaves_the_reloaded_lanes_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lanes a reload rebuilds are not stopped before the last step that can fail."""
    from gateway.lanes.care.lane import CareComponent

    stopped: list[str] = []
    real_stop = CareComponent.stop

    async def counting_stop(self: CareComponent) -> None:
        stopped.append("care")
        await real_stop(self)

    monkeypatch.setattr(CareComponent, "stop", counting_stop)
    config = tmp_path / "lintel.toml"
    config.write_text(local_text(tmp_path))
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / "config.overlay.toml").mkdir()  # the overlay cannot be written

    async def attempt(daemon: Daemon) -> list[str]:
        with pytest.raises(Failed):
            await daemon.reload(local_text(tmp_path, above=5000), None)
        return list(stopped)

    assert running(tmp_path, attempt) == []  # still running when the reload gave up
    assert stopped == ["care"]  # and stopped once, at shutdown
