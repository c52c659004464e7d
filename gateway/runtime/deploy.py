"""Applying a signed deployment: check, stage, restart, probation, then keep it or roll back.

`deploy_config` (role: an operator key whose `allow` has it) is handled in this order:
1. its `version` must be above the last one handled (else `stale` / `replayed`: refused);
2. it is checked fully against *today's* local file (`gateway.config.deployment.check`): a refusal
   is answered and reported upstream as `config_rejected` with check-config's problem texts;
3. it is staged (`deploy/pending.json`, durably). When it changes only what a reload can (sources,
   rules, care, log, door timings: `Reloader.restart_needed` is empty) it is marked `trying` and
   applied in the running process by the `Reloader`. Otherwise the process restarts: staged stop
   (doors released first, everything accepted committed), then the CLI re-executes `lintel run`,
   which starts on the staged deployment and marks it `trying` before building anything;
4. probation (`Deployer.probation`, `deploy.probation_s`): the broker must be reached with the
   new settings, every source and door the deployment changed must be running (a source: each of
   its devices online; a door: its relay answered and is released) and none may fail. Then it
   becomes the last-known-good and `config_applied` (version, sha256) is reported. Otherwise
   `config_rolled_back` (the reason) is recorded, the deployment dropped and the process restarts
   on the last-known-good. A local edit of the config file during probation wins:
   `config_diverged`, and a restart on the local file.
A failed probation always restarts onto the last-known-good (the one way back that also holds
after a crash). What each path costs is measured in bench/deploy.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from gateway.commands.envelope import MAX_COMMAND_BYTES
from gateway.config.deploy_files import DeployFiles, Recorded
from gateway.config.deployment import Deployment, check
from gateway.config.loader import LoadedConfig, load_config
from gateway.config.secrets import GatewayKey, SecretError, SecretStore
from gateway.core import Clock, ConfigError, Event, Record
from gateway.core.commands import Caller, Failed, Handler, Rejected
from gateway.runtime.probation import Watch, changed_parts, failed, file_sha256, judge
from gateway.runtime.reload import Reloader
from gateway.runtime.report import ConfigReport

log = logging.getLogger("lintel.deploy")

GATEWAY_SOURCE = "gateway"
POLL_S = 0.25  # how often a probation looks (the config file is hashed each time)

__all__ = ["Deployer", "Watch"]


class Deployer:
    """The gateway's side of deployments: the `deploy_config` handler and the probation."""

    def __init__(
        self,
        running: LoadedConfig,
        key: GatewayKey,
        files: DeployFiles,
        clock: Clock,
        emit: Callable[[Record], bool],
        restart: Callable[[str], None],
        on_probation: Recorded | None = None,
        previous: LoadedConfig | None = None,
    ) -> None:
        self.running = running
        self.previous = previous  # what ran before the deployment on probation (to see what changed)
        self.key = key
        self.files = files
        self.store = SecretStore(running.state_dir)
        self.clock = clock
        self.emit = emit
        self.restart = restart
        self.on_probation = on_probation
        self.restarting = False
        self._checking = False  # a deployment is being checked: a second one waits for its outcome
        self.reloader: Reloader | None = None  # set by the daemon: applies what needs no restart
        self._group: asyncio.TaskGroup | None = None
        self._watch: Watch | None = None

    def report(self) -> ConfigReport:
        return ConfigReport(
            self.running.version,
            self.running.origin,
            self.running.sha256,
            self.on_probation is not None,
            self.key.public_b64,
        )

    def listen(self, uplink: Any, deliver: Callable[[bytes], None]) -> None:
        """Take the uplink's retained deployment topic; what is `wanted` goes to `deliver` (the
        command router's way in)."""

        def arrived(payload: bytes, retained: bool) -> None:
            if self.wanted(payload, retained):
                deliver(payload)

        uplink.on_deployment = arrived

    def start(self, group: asyncio.TaskGroup, watch: Watch) -> asyncio.Task[None]:
        """Report the outcomes decided at start, and run the probation (if any) in `group`."""
        self.report_recorded_outcomes()
        self._group, self._watch = group, watch
        return group.create_task(self.probation(watch), name="probation")

    def wanted(self, payload: bytes, retained: bool) -> bool:
        """Whether a message from the deployment topic goes to the command router: not a retained
        copy of one already handled (what the broker keeps, handed over at every connect)."""
        return not (retained and self.already_handled(payload))

    def already_handled(self, payload: bytes) -> bool:
        """Whether a deployment's version was handled already: read, never trusted."""
        if len(payload) > MAX_COMMAND_BYTES:
            return False
        try:
            version = json.loads(payload).get("args", {}).get("version")
        except (ValueError, AttributeError, RecursionError):
            return False
        return isinstance(version, int) and version <= self.files.handled_version()

    def _event(self, kind: str, body: dict[str, Any]) -> None:
        self.emit(Event(GATEWAY_SOURCE, kind, self.clock.time_ms(), body))

    def report_recorded_outcomes(self) -> None:
        """Outcomes decided while no daemon ran (at start): reported now, then forgotten."""
        for outcome in self.files.outcomes():
            kind = str(outcome.pop("kind", "config_rolled_back"))
            self._event(kind, outcome)
        self.files.clear_outcomes()

    # -- the command ---------------------------------------------------------------------------------
    def handler(self) -> Handler:
        async def deploy_config(args: dict[str, Any], caller: Caller) -> dict[str, Any]:
            return await self.deploy(args, caller.by)

        return deploy_config

    async def deploy(self, args: dict[str, Any], by: str) -> dict[str, Any]:
        try:
            dep = Deployment.from_json({**args, "by": by})
        except ValueError as exc:
            raise Rejected(f"invalid deployment: {exc}") from None
        handled = self.files.handled_version()
        if dep.version < handled:
            raise Rejected(f"stale: version {dep.version} is older than the last handled ({handled})")
        if dep.version == handled:
            raise Rejected(f"replayed: version {dep.version} was handled already")
        if self.on_probation is not None or self.restarting or self._checking:
            raise Rejected("busy: another deployment is being applied; send again after its outcome")
        if self.running.path is None:
            raise Rejected("this gateway runs without a local config file: nothing to deploy over")
        self._checking = True
        try:
            base = await asyncio.to_thread(load_config, self.running.path)
            candidate = await asyncio.to_thread(check, dep, base, self.key, self.store.load())
        except (ConfigError, SecretError) as exc:
            problems = [str(p) for p in exc.problems] if isinstance(exc, ConfigError) else [str(exc)]
            self.files.mark_handled(dep.version)
            self._event(
                "config_rejected", {"version": dep.version, "sha256": dep.sha256, "problems": problems}
            )
            log.warning("deployment v%d from %s rejected: %s", dep.version, by, "; ".join(problems))
            shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
            raise Rejected(f"invalid deployment: {shown}") from None
        finally:
            self._checking = False
        self.files.stage(dep, base.file_sha256)
        self.files.mark_handled(dep.version)
        if self.reloader is not None and not self.reloader.restart_needed(candidate):
            return await self._apply_running(dep, candidate)
        self.restarting = True
        log.info("deployment v%d from %s staged: restarting onto it", dep.version, by)
        asyncio.get_running_loop().call_soon(self.restart, f"deployment v{dep.version}")
        return {"version": dep.version, "sha256": dep.sha256, "state": "restarting"}

    async def _apply_running(self, dep: Deployment, candidate: LoadedConfig) -> dict[str, Any]:
        """A deployment that changes only what a reload can (sources, rules, care, log, door
        timings): started in the running process, then on probation there. Marked `trying` first,
        so a crash during it comes back on the last-known-good; a failed probation restarts onto it."""
        staged = self.files.pending()
        assert staged is not None and self.reloader is not None and self._group is not None
        self.files.mark_trying(staged)
        self.on_probation = self.files.pending()  # busy from here: a second deployment waits
        previous = self.running
        try:
            await self.reloader.apply(candidate)
        except (Rejected, Failed) as exc:  # could not be built: nothing changed
            self.on_probation = None
            self.files.drop_pending()
            self._event("config_rolled_back", {"version": dep.version, "reason": str(exc)})
            raise Failed(f"deployment v{dep.version} not applied: {exc}") from None
        self.running, self.previous = candidate, previous
        watch = self._watch
        assert watch is not None
        self._group.create_task(self.probation(watch), name="probation")
        log.info("deployment v%d from %s applied without a restart: on probation", dep.version, dep.by)
        return {"version": dep.version, "sha256": dep.sha256, "state": "on probation"}

    # -- reloads while a deployment runs ---------------------------------------------------------------
    def reload(self, toml_text: str | None) -> dict[str, Any]:
        """`reload_config` / SIGHUP while a deployment runs. Remote tunables come with a deployment
        now; a local edit wins over the deployment, through a restart (the start-up choice reports
        `config_diverged` and runs the local file)."""
        if toml_text is not None:
            origin = self.running.origin
            raise Rejected(
                f"this gateway runs {origin}: send tunables in a new deployment (docs/deployments.md)"
            )
        if file_sha256(self.running.path) == self.running.file_sha256:
            return {"changed": False, "config_sha256": self.running.sha256}
        if not self.restarting:
            self.restarting = True
            asyncio.get_running_loop().call_soon(self.restart, "local config file edited")
        return {"changed": True, "config_sha256": self.running.sha256, "restarting": True}

    # -- probation -----------------------------------------------------------------------------------
    async def probation(self, watch: Watch) -> None:
        """Run the probation of the deployment this process started on: keep it, or roll back."""
        rec = self.on_probation
        if rec is None:
            return
        dep = rec.deployment
        probation_s = self.running.config.deploy.probation_s
        sources, doors = changed_parts(self.previous, self.running)
        needs_broker = self.running.config.mqtt is not None
        deadline = self.clock.monotonic() + probation_s
        reason: str | None = None
        while True:
            if file_sha256(self.running.path) != rec.local_sha256:
                self._diverged(dep)
                return
            reason = failed(watch, sources, doors)
            if reason is not None:
                break
            if self.clock.monotonic() >= deadline:
                reason = judge(watch, needs_broker, sources, doors, probation_s)
                break
            await asyncio.sleep(POLL_S)
        if reason is not None:
            log.error("deployment v%d failed its probation: %s; rolling back", dep.version, reason)
            self.files.add_outcome("config_rolled_back", {"version": dep.version, "reason": reason})
            self.files.drop_pending()
            self.restarting = True
            self.restart(f"rollback of deployment v{dep.version}")
            return
        opened = {name: self.running.secrets[name] for name in dep.secrets}
        if opened:
            await asyncio.to_thread(self.store.merge, opened)
        await asyncio.to_thread(self.files.promote, rec)
        self.on_probation = None
        self._event("config_applied", {"version": dep.version, "sha256": dep.sha256})
        log.info("deployment v%d passed its probation (%.1f s): kept", dep.version, probation_s)

    def _diverged(self, dep: Deployment) -> None:
        reason = (
            f"the local config file was edited during the probation of deployment v{dep.version}: it wins"
        )
        log.warning("%s", reason)
        self.files.add_outcome("config_diverged", {"version": dep.version, "reason": reason})
        self.files.drop_pending()
        self.restarting = True
        self.restart(f"local edit during deployment v{dep.version}")
