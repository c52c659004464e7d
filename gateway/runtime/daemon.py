"""The daemon: runs the core parts, the lanes and the sources; owns signals, staged stop and watchdog.

Layout of the process: one asyncio loop running a TaskGroup of supervised tasks (every source and
every lane component, the status file, stats messages, the systemd watchdog, processor timers), plus
the named threads that own blocking work: `outbox-writer` (SQLite), `uplink` (MQTT socket) and, only
when a camera lane exists, the inference thread.

Shutdown is the timed stages of gateway.runtime.shutdown (`daemon_stages`, within
runtime.shutdown_timeout_s); a second SIGTERM/SIGINT exits at once: whatever was accepted is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from gateway import __version__
from gateway.commands.builtin import alarm_ack_handler, outbox_stats_handler, ping_handler, reload_handler
from gateway.commands.update import update_handler
from gateway.config import LoadedConfig
from gateway.core import Clock, Record, SystemClock
from gateway.releases.probation import EXIT_ROLLBACK, ReleaseProbation, Vitals
from gateway.runtime import report as rp
from gateway.runtime.assembly import Core
from gateway.runtime.command_service import doors_of, serve_commands
from gateway.runtime.control import SOCKET_NAME, ControlServer
from gateway.runtime.deploy import Deployer, Watch
from gateway.runtime.health import Health
from gateway.runtime.lanes import Lanes
from gateway.runtime.periodic import every
from gateway.runtime.reload import Reloader
from gateway.runtime.sdnotify import Notifier
from gateway.runtime.shutdown import daemon_stages, run_stages
from gateway.runtime.sources import Sources
from gateway.runtime.status_file import status_line, write_status
from gateway.runtime.supervisor import RestartPolicy

log = logging.getLogger("lintel.daemon")


class Daemon:
    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        observers: list[Callable[[Record], None]] | None = None,
        deployer: Deployer | None = None,
    ) -> None:
        self.loaded = loaded
        self.deployer = deployer  # signed deployments (gateway.runtime.deploy); None in tests and the demo
        self.restart_reason: str | None = None  # set: after the staged stop, `lintel run` re-executes
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.core = core = Core(loaded, self.clock, list(observers or []))
        rt = loaded.config.runtime
        self.policy = RestartPolicy(
            rt.restart_budget, rt.restart_window_s, rt.restart_initial_s, rt.restart_max_s
        )
        self.health_watch = Health(self.clock, rt.stall_after_s, self._links())
        self.health = self.health_watch.parts  # sources and lane components add theirs
        self.lanes = Lanes(loaded.config, core.lane_deps(), self.policy, self.health)
        core.set_processors(self.lanes.processors)
        self.sources = Sources(
            self.clock,
            core.pipeline.submit,
            core.frames,
            core.actuators,
            self.policy,
            rt.stall_after_s,
            self.health,
            core.state_store,
            core.pipeline.submit_many,
            secrets=loaded.secrets,
            tags=core.tags,
        )
        self.reloader = Reloader(
            self.lanes, self.sources, self.clock, core.pipeline.submit, lambda: self.loaded, self._applied
        )
        if deployer is not None:
            deployer.reloader = self.reloader  # a deployment that needs no restart is applied by it
        self.refresh_handlers()
        self.control = ControlServer(loaded.runtime_dir / SOCKET_NAME, core.router)
        self.state = "starting"
        # a new release on probation commits itself or asks the boot guard for a rollback
        usec = self.notifier.watchdog_usec
        self.release = ReleaseProbation(
            loaded.state_dir, __version__, self.clock, watchdog_s=usec / 1e6 if usec else None
        )
        core.release_state = lambda: self.release.state
        self.exit_code = 0  # EXIT_ROLLBACK after a failed probation: systemd restarts, the guard switches
        self._stop = asyncio.Event()
        self._signals = 0
        self._group: asyncio.TaskGroup | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _applied(self, new: LoadedConfig) -> None:
        """A reload's new config takes over: the lanes' new steps and handlers go in."""
        self.loaded = self.core.loaded = new
        self.core.set_processors(self.lanes.processors)
        self.refresh_handlers()

    def refresh_handlers(self) -> None:
        core = self.core
        core.router.handlers = {
            "ping": ping_handler(self.clock, core.started_mono, lambda: self.loaded.sha256),
            "outbox_stats": outbox_stats_handler(lambda: rp.to_json(core.writer.report())),
            "alarm_ack": alarm_ack_handler(core.book, self.clock, core.pipeline.submit),
            "reload_config": reload_handler(self.reload, lambda caller: doors_of(core.router, caller)),
            "update": update_handler(self.loaded.state_dir),
            **self.lanes.handlers(),
        }
        if self.deployer is not None:
            core.router.handlers["deploy_config"] = self.deployer.handler()
            core.config_report = lambda: rp.to_json(self.config_report())

    # -- reports -------------------------------------------------------------------------------------
    def report(self) -> rp.GatewayReport:
        self._refresh_thread_health()
        return rp.gateway_report(
            self.core, self.lanes, self.sources, self.health, self.state, self.config_report()
        )

    def config_report(self) -> rp.ConfigReport:
        if self.deployer is not None:
            return self.deployer.report()
        return rp.ConfigReport(None, self.loaded.origin, self.loaded.sha256, False, None)

    def status_body(self) -> dict[str, Any]:
        return rp.to_json(self.report())

    def _links(self) -> dict[str, Any]:
        """The MQTT links whose threads the watchdog watches, by component name."""
        links = {"uplink": self.core.uplink, "sparkplug": self.core.sparkplug}
        return {name: link for name, link in links.items() if link is not None}

    def _refresh_thread_health(self) -> None:
        self.health_watch.refresh_threads(self.core.writer, self._links(), self.state == "stopped")

    # -- running -------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("stop requested: shutting down in stages (again to force)")
            self._stop.set()
        else:
            log.warning("second stop request: exiting now")
            self.notifier.stopping("forced exit")
            os._exit(130)

    def request_restart(self, reason: str) -> None:
        """Stop in stages like SIGTERM, then have `lintel run` start again (a deployment, a rollback)."""
        self.restart_reason = reason
        self.request_stop()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_local)

    def _reload_local(self) -> None:
        """SIGHUP: apply the installer's edited file (sources included), like systemctl reload."""
        if self._group is not None and self.state == "running":
            self._group.create_task(self._logged_reload(), name="sighup-reload")

    async def _logged_reload(self) -> None:
        try:
            result = await self.reload(None, None)
            log.info("SIGHUP: %s", "config reloaded" if result["changed"] else "config unchanged")
        except Exception as exc:  # Rejected / Failed say why; the old config keeps running
            log.error("SIGHUP: config not reloaded: %s", exc)

    async def run(self) -> None:
        """Run until request_stop(); then shut down in stages."""
        core = self.core
        core.writer.start()
        core.announce_recovery()
        self._loop = asyncio.get_running_loop()
        core.inbox.bind(self._loop)
        if core.uplink is not None and self.loaded.config.commands.enabled:
            core.uplink.on_command = self._command_arrived
            if self.deployer is not None:
                self.deployer.listen(core.uplink, self._command_arrived)
        if core.uplink is not None:
            core.uplink.start()
        if core.sparkplug is not None:
            core.sparkplug.start()
        await self.control.start()
        mqtt = self.loaded.config.mqtt
        stats_s = mqtt.stats_interval_s if mqtt else 60.0
        async with asyncio.TaskGroup() as group:
            self._group = self.sources.group = group
            await self.lanes.start(group)  # doors switch their relays off before any pulse
            for cfg in self.loaded.config.sources:
                if cfg.enabled:
                    self.sources.start(cfg)
            loops = [
                group.create_task(every(self.loaded.config.runtime.status_interval_s, self._write_status)),
                group.create_task(every(stats_s, self._submit_stats, first_after=True), name="stats"),
                group.create_task(
                    self.health_watch.watchdog(self.notifier, self._refresh_thread_health), name="watchdog"
                ),
                group.create_task(every(1.0, self._tick), name="processor-ticks"),
                group.create_task(
                    serve_commands(core.inbox, core.router, group, lambda: self.state == "running"),
                    name="commands",
                ),
                group.create_task(
                    self.release.run(self._vitals, core.pipeline.submit, self._roll_back), name="release"
                ),
            ]
            if self.deployer is not None:
                loops.append(
                    self.deployer.start(
                        group, Watch.of(core.uplink, self.health, self.lanes.doors, self.sources)
                    )
                )
            self.state = "running"
            self.notifier.ready(self._status_line())
            gw = self.loaded.config.gateway
            log.info(
                "lintel %s running: gateway %s/%s, %d sources, %d lanes, boot reason %s",
                __version__,
                gw.site,
                gw.id,
                len(self.sources.tasks),
                len(self.lanes.lanes),
                core.boot_reason,
            )
            await self._stop.wait()
            await self._shutdown(loops)

    async def _shutdown(self, loops: list[asyncio.Task[None]]) -> None:
        self.state = "stopping"
        for task in loops:  # no watchdog pet once systemd is told we are stopping
            if task.get_name() == "watchdog":
                task.cancel()
        budget = self.loaded.config.runtime.shutdown_timeout_s
        # A restart for a deployment is, for systemd, a reload of the same process (never STOPPING).
        restarting = self.restart_reason is not None
        stages = daemon_stages(self.core, self.lanes, self.sources, self.control, loops)
        await run_stages(stages, budget, self.clock, self.notifier, restarting=restarting)
        self.state = "stopped"
        self._write_status()
        log.info("lintel stopped")

    def _status_line(self) -> str:
        return status_line(self.state, self.core.writer.backlog_rows(), self.core.uplink)

    def _write_status(self) -> None:
        path = self.loaded.status_path
        try:
            write_status(path, rp.encode(self.report()))
        except OSError as exc:
            log.warning("cannot write status file %s: %s", path, exc)
        self.notifier.status(self._status_line())

    def _tick(self) -> None:
        self.core.pipeline.tick(self.clock.time_ms())

    def _submit_stats(self) -> None:
        self.core.writer.submit_stats(rp.to_json(self.report().stats()))

    # -- release probation ---------------------------------------------------------------------------
    def _vitals(self) -> Vitals:
        self._refresh_thread_health()
        broker = self.core.uplink.state if self.core.uplink is not None else "disabled"
        return self.health_watch.vitals(self.state == "running", broker)

    def _roll_back(self) -> None:
        self.exit_code = EXIT_ROLLBACK
        self.request_stop()

    # -- commands ------------------------------------------------------------------------------------
    def _command_arrived(self, payload: bytes) -> None:
        """Uplink thread: into the bounded inbox (size and work budget checked there, unparsed)."""
        self.core.inbox.offer(payload)

    async def reload(
        self, toml_text: str | None, expect_sha256: str | None, doors: frozenset[str] | None = None
    ) -> dict[str, Any]:
        """Validate a new config, then apply it atomically; the old one stays on any failure.
        `doors`: the doors whose tunables the caller may change (None: any)."""
        if self.deployer is not None and self.loaded.origin != "local":
            return self.deployer.reload(toml_text)  # a local edit wins by a restart; no remote tunables
        return (await self.reloader.reload(toml_text, expect_sha256, doors)).as_dict()


async def run_daemon(daemon: Daemon, early_stops: int = 0) -> None:
    """Run with SIGTERM/SIGINT handlers; `early_stops` counts signals that came during start-up."""
    daemon.install_signal_handlers()
    for _ in range(early_stops):
        daemon.request_stop()
    await daemon.run()
