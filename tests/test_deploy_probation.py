"""The probation's decisions, with the daemon's parts replaced by a `Watch` (our own interface) and
time driven by a ManualClock; the same paths against a real `lintel run` are in test_deploy_process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.config.deploy_files import DeployFiles
from gateway.config.deployment import Deployment
from gateway.config.effective import choose
from gateway.config.secrets import GatewayKey, SecretStore
from gateway.core.clock import ManualClock
from gateway.runtime.deploy import Deployer, Watch
from tests.support.configs import source_toml
from tests.test_deploy_config import _base

METER = {"id": "m9", "unit": 1, "profile": "eastron_sdm120"}
BUS = (
    source_toml("modbus", "bus-9", "meters", [METER], endpoint="tcp://127.0.0.1:1502")
    + "\n[deploy]\nprobation_s = 5\n"
)


class Parts:
    """What the watch sees; each test sets the parts' states."""

    def __init__(self) -> None:
        self.connected = True
        self.states: dict[str, str] = {"source:bus-9": "running"}
        self.online: bool | None = True

    def watch(self) -> Watch:
        return Watch(
            broker_reached=lambda: self.connected,
            component_states=lambda: self.states,
            door_states=lambda: {},
            devices=lambda: [("bus-9", "m9", self.online, None if self.online else "timeout")],
        )


def _deployer(tmp_path: Path) -> tuple[Deployer, ManualClock, list[Any], list[str], DeployFiles, Path]:
    path = _base(tmp_path)
    base = load_config(path)
    key, store, files = (
        GatewayKey.load_or_create(base.state_dir),
        SecretStore(base.state_dir),
        DeployFiles(base.state_dir),
    )
    files.stage(Deployment(3, BUS), base.sha256)
    start = choose(base, key, store, files)
    assert start.on_probation is not None
    clock, events, restarts = ManualClock(), [], []
    deployer = Deployer(
        start.loaded, key, files, clock, events.append, restarts.append, start.on_probation, start.previous
    )
    return deployer, clock, events, restarts, files, path


async def _run(deployer: Deployer, clock: ManualClock, watch: Watch, then: Any = None) -> None:
    task = asyncio.create_task(deployer.probation(watch))
    await asyncio.sleep(0.05)
    if then is not None:
        then()
        await asyncio.sleep(0.4)
    clock.advance(6)
    await asyncio.wait_for(task, 5)


def test_a_deployment_that_holds_through_its_probation_is_kept(tmp_path: Path) -> None:
    deployer, clock, events, restarts, files, _ = _deployer(tmp_path)
    asyncio.run(_run(deployer, clock, Parts().watch()))
    assert [e.kind for e in events] == ["config_applied"] and events[0].attrs["version"] == 3
    assert restarts == [] and files.pending() is None
    assert files.lkg() is not None and files.lkg().deployment.version == 3
    assert deployer.report().on_probation is False


def test_no_broker_within_the_probation_rolls_back(tmp_path: Path) -> None:
    deployer, clock, events, restarts, files, _ = _deployer(tmp_path)
    parts = Parts()
    parts.connected = False
    asyncio.run(_run(deployer, clock, parts.watch()))
    assert events == [] and restarts == ["rollback of deployment v3"]
    assert files.pending() is None and files.lkg() is None
    outcome = files.outcomes()[-1]
    assert outcome["kind"] == "config_rolled_back" and "broker was not reached" in outcome["reason"]


def test_a_changed_device_offline_at_the_end_rolls_back_naming_it(tmp_path: Path) -> None:
    deployer, clock, _, restarts, files, _ = _deployer(tmp_path)
    parts = Parts()
    parts.online = False
    asyncio.run(_run(deployer, clock, parts.watch()))
    assert restarts and "bus-9/m9 offline (timeout)" in files.outcomes()[-1]["reason"]


def test_a_changed_source_that_fails_ends_the_probation_at_once(tmp_path: Path) -> None:
    deployer, _clock, _, restarts, files, _ = _deployer(tmp_path)
    parts = Parts()

    async def scenario() -> None:
        task = asyncio.create_task(deployer.probation(parts.watch()))
        await asyncio.sleep(0.05)
        parts.states["source:bus-9"] = "failed"
        await asyncio.wait_for(task, 5)  # no clock.advance: it did not wait for the deadline

    asyncio.run(scenario())
    assert restarts and files.outcomes()[-1]["reason"] == "source:bus-9 failed"


def test_a_local_edit_during_probation_wins(tmp_path: Path) -> None:
    deployer, clock, events, restarts, files, path = _deployer(tmp_path)
    edit = lambda: path.write_text(path.read_text() + "\n# edited on site\n")  # noqa: E731
    asyncio.run(_run(deployer, clock, Parts().watch(), then=edit))
    assert events == [] and restarts == ["local edit during deployment v3"]
    assert files.outcomes()[-1]["kind"] == "config_diverged" and files.pending() is None
