"""The daemon: wires config -> sources -> pipeline -> outbox writer -> uplink, and runs them.

Layout of the process: one asyncio loop running a TaskGroup (the supervised sources, the status
file, stats messages, the systemd watchdog, processor timers), plus two named threads that own
blocking work: `outbox-writer` (SQLite) and `uplink` (MQTT socket + read-only SQLite).

Shutdown is staged and time-limited (runtime.shutdown_timeout_s in total): stop sources -> commit
what they produced -> let the uplink finish in-flight messages and say offline -> close the
database cleanly. A second SIGTERM/SIGINT exits at once; whatever was accepted is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import __version__, registry
from gateway.alarms import AlarmBook, AlarmReminders
from gateway.care.watch import CareWatch
from gateway.commands.handlers import build_handlers
from gateway.commands.replay import ReplayGuard
from gateway.commands.router import CommandRouter, Failed, Rejected
from gateway.config import LoadedConfig, parse_config
from gateway.config.loader import file_problems, read_secret
from gateway.config.model import GatewayConfig
from gateway.core import Clock, ConfigError, Event, Record, SourceContext, SystemClock
from gateway.core.clock import clock_is_set
from gateway.core.files import replace_durably
from gateway.core.frames import FrameHub, FrameSource
from gateway.core.processor import Processor
from gateway.doors import Doors
from gateway.encode import Encoder, Topics
from gateway.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.pipeline import Pipeline
from gateway.rules.engine import RulesProcessor
from gateway.runtime.control import SOCKET_NAME, ControlServer
from gateway.runtime.sdnotify import Notifier
from gateway.runtime.supervisor import ComponentHealth, RestartPolicy, supervise
from gateway.state import StateStore, state_path
from gateway.status import write_status
from gateway.uplink import Uplink, UplinkSettings

if TYPE_CHECKING:
    from gateway.faces.access import FaceAccessWatch
    from gateway.vision.engine import InferenceEngine
    from gateway.vision.watch import FireLaneWatch

log = logging.getLogger("lintel.daemon")

GATEWAY_SOURCE = "gateway"
# Sections a running daemon cannot change: reload_config refuses them (restart the service).
RESTART_SECTIONS = ("gateway", "outbox", "mqtt", "runtime", "vision", "fire_lanes", "faces", "face_access")


def boot_id() -> int:
    """This system boot's id as an int (0 where the kernel does not say)."""
    try:
        return int(Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:15], 16)
    except (OSError, ValueError):
        return 0


class Daemon:
    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        processors: list[Processor] | None = None,
        observers: list[Callable[[Record], None]] | None = None,
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        gw = self.config.gateway
        prefix = self.config.mqtt.topic_prefix if self.config.mqtt else "lintel"
        self.topics = Topics(prefix, gw.site, gw.id)
        self.encoder = Encoder(self.topics)
        self.store = OutboxStore(loaded.outbox_path)
        self.boot_reason = self._boot_reason()
        self.writer = OutboxWriter(
            self.store, self.encoder, self.clock, OutboxLimits.from_config(self.config.outbox)
        )
        self.state_store = StateStore(state_path(loaded.state_dir))
        self.book = AlarmBook(self.state_store)
        self.extra_processors = list(processors or [])
        self.care: CareWatch | None = None
        self.rules: RulesProcessor | None = None
        self.pipeline = Pipeline(self.writer.submit, [], observers or [])
        self.pipeline.processors = self._build_processors(self.config, self.clock.time_ms())
        self.doors = Doors(self.config.doors, self.clock, self.pipeline.submit)
        self.frames = FrameHub()
        self.fire: FireLaneWatch | None = None
        self.fire_error: str | None = None
        self.faces: FaceAccessWatch | None = None
        self.faces_error: str | None = None
        self.engine: InferenceEngine | None = None
        if self.config.fire_lanes or self.config.face_access:
            from gateway.vision.engine import InferenceEngine

            self.engine = InferenceEngine(self.config.vision.threads)
        if self.config.fire_lanes:
            self._build_fire_lanes()
        if self.config.face_access:
            self._build_face_access()
        cmd = self.config.commands
        self.router = CommandRouter(
            {},
            set(cmd.allow),
            ReplayGuard(self.state_store, cmd.max_age_s, cmd.max_skew_s),
            self.clock,
            self.writer.submit_result,
            cmd.max_per_minute,
        )
        self.router.handlers = build_handlers(self)
        self.control = ControlServer(loaded.runtime_dir / SOCKET_NAME, self.router)
        self.uplink: Uplink | None = None
        if self.config.mqtt is not None:
            mqtt = self.config.mqtt
            password = read_secret(loaded.resolve(mqtt.password_file)) if mqtt.password_file else None
            settings = UplinkSettings.from_config(mqtt, f"lintel-{gw.site}-{gw.id}", password, loaded.resolve)
            self.uplink = Uplink(settings, self.writer, self.encoder, self.clock, self._birth_body)
            self.writer.on_commit = self.uplink.wake
        stall = self.config.runtime.stall_after_s
        self.health: dict[str, ComponentHealth] = {
            "outbox": ComponentHealth("outbox", stall_after_s=stall),
        }
        if self.uplink is not None:
            self.health["uplink"] = ComponentHealth("uplink", stall_after_s=stall)
        self.started_mono = time.monotonic()
        self.started_ms = self.clock.time_ms()
        self.state = "starting"
        self._stop = asyncio.Event()
        self._signals = 0
        self._group: asyncio.TaskGroup | None = None
        self._source_tasks: dict[str, asyncio.Task[None]] = {}
        self._reload_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _build_fire_lanes(self) -> None:
        """The fire-lane watch; a model problem leaves the lanes UNKNOWN, never the gateway down."""
        from gateway.vision.catalog import ModelError
        from gateway.vision.watch import FireLaneWatch

        try:
            self.fire = FireLaneWatch(
                self.config.vision,
                self.config.fire_lanes,
                self.frames,
                self.book,
                self.state_store,
                self.clock,
                self.pipeline.submit,
                self.loaded.state_dir,
                self.engine,
            )
        except ModelError as exc:
            self.fire_error = str(exc)

    def _build_face_access(self) -> None:
        """The face access lane; a model or gallery problem leaves the doors to cards and PINs
        (and says so), never the gateway down."""
        from gateway.faces.access import FaceAccessWatch
        from gateway.vision.catalog import ModelError, configured

        assert self.engine is not None
        try:
            self.faces = FaceAccessWatch(
                self.config.faces,
                self.config.face_access,
                self.frames,
                lambda: self.doors,
                self.state_store,
                self.clock,
                self.pipeline.submit,
                self.loaded.state_dir,
                self.engine,
                configured(self.config.vision),
                self.config.vision.timezone,
            )
        except ModelError as exc:
            self.faces_error = str(exc)

    async def _start_face_access(self, group: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        from gateway.faces.gallery import GalleryError
        from gateway.faces.keys import GalleryKeyError
        from gateway.vision.catalog import ModelError

        if self.faces is not None:
            try:
                await self.faces.start()
            except (ModelError, GalleryError, GalleryKeyError, OSError) as exc:
                self.faces_error = str(exc)
                self.faces.close()
                self.faces = None
        if self.faces is None:
            log.error("face access is not running (doors open by card/PIN only): %s", self.faces_error)
            now = self.clock.time_ms()
            for entrance in self.config.face_access:
                body = {"camera": entrance.camera, "door": entrance.door, "reason": self.faces_error}
                self.pipeline.submit(Event(entrance.id, "face_access_unavailable", now, body, "warning"))
            return []
        faces = self.faces
        return [
            group.create_task(faces.poll_gallery(), name="face-gallery"),
            *(
                group.create_task(faces.run_entrance(e), name=f"face-access:{e.id}")
                for e in self.config.face_access
            ),
        ]

    async def _start_fire_lanes(self, group: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        from gateway.vision.catalog import ModelError

        if self.fire is not None:
            try:
                await self.fire.start()
            except ModelError as exc:
                self.fire_error = str(exc)
                self.fire.close()
                self.fire = None
        if self.fire is None:
            log.error("fire lanes are not watched: %s", self.fire_error)
            now = self.clock.time_ms()
            for lane in self.config.fire_lanes:
                reason = f"detector unavailable: {self.fire_error}"
                self.pipeline.submit(
                    Event(
                        lane.id,
                        "fire_lane_unknown",
                        now,
                        {"camera": lane.camera, "reason": reason},
                        "warning",
                    )
                )
            return []
        return [
            group.create_task(self.fire.run_camera(camera_id), name=f"fire-lane:{camera_id}")
            for camera_id in self.fire.analyzers
        ]

    def _build_processors(self, config: GatewayConfig, now_ms: int) -> list[Processor]:
        """Care watch, rules, then reminders: each later step sees what the earlier ones raised."""
        self.care = CareWatch(config.care, self.book, self.state_store, now_ms) if config.care else None
        self.rules = RulesProcessor(config.rules, self.book, self.state_store) if config.rules else None
        steps: list[Processor] = [*self.extra_processors]
        if self.care is not None:
            steps.append(self.care)
        if self.rules is not None:
            steps.append(self.rules)
        steps.append(AlarmReminders(self.book))
        return steps

    # -- facts ------------------------------------------------------------------------------------
    def _boot_reason(self) -> str:
        report = self.store.report
        meta = self.store.meta()
        previous_boot = meta.get("boot_id")
        this_boot = boot_id()
        self.store.set_meta({"boot_id": this_boot})
        if report.quarantined_to:
            return "outbox_replaced"
        if report.created:
            return "first_start"
        rebooted = previous_boot is not None and previous_boot != this_boot
        if not report.was_clean_shutdown:
            return "power_loss" if rebooted else "crash"
        return "reboot" if rebooted else "restart"

    def versions(self) -> dict[str, str]:
        import paho.mqtt

        return {
            "lintel": __version__,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "paho_mqtt": paho.mqtt.__version__,
        }

    def _birth_body(self) -> dict[str, Any]:
        snap = self.writer.snapshot()
        return {
            "versions": self.versions(),
            "config_sha256": self.loaded.sha256,
            "boot_reason": self.boot_reason,
            "started_ms": self.started_ms,
            "clock_set": clock_is_set(self.clock.time_ms()),
            "outbox": {"rows": snap["rows"], "bytes": snap["bytes"], "dropped": snap["dropped"]},
        }

    def status_body(self) -> dict[str, Any]:
        now = time.monotonic()
        self._refresh_thread_health()
        return {
            "pid": os.getpid(),
            "state": self.state,
            "gateway_id": self.config.gateway.id,
            "site": self.config.gateway.site,
            "version": __version__,
            "boot_reason": self.boot_reason,
            "outbox_recovery": (
                {"moved_to": self.store.report.quarantined_to, "reason": self.store.report.quarantine_reason}
                if self.store.report.quarantined_to
                else None
            ),
            "uptime_s": round(now - self.started_mono, 1),
            "config_sha256": self.loaded.sha256,
            "components": [h.as_dict(now) for h in self.health.values()],
            "outbox": self.writer.snapshot(),
            "uplink": self.uplink.snapshot() if self.uplink else {"state": "disabled"},
            "pipeline": {
                "accepted": self.pipeline.accepted,
                "refused": self.pipeline.refused,
                "processor_errors": dict(self.pipeline.processor_errors),
            },
            "alarms": self.book.listing(self.clock.time_ms()),
            "care": self.care.status(self.clock.time_ms()) if self.care else None,
            "rules": {"suppressed_readings": self.rules.suppressed} if self.rules else None,
            "commands": self.router.snapshot(),
            "doors": {"pulses": self.doors.pulses, "failures": self.doors.failures},
            "vision": self.fire.status()
            if self.fire
            else ({"error": self.fire_error} if self.fire_error else None),
            "faces": self.faces.status()
            if self.faces
            else ({"error": self.faces_error} if self.faces_error else None),
            "written_ms": self.clock.time_ms(),
        }

    def _refresh_thread_health(self) -> None:
        out = self.health["outbox"]
        out.state = "running" if self.writer.alive else "failed"
        out.last_error = self.writer.last_error
        # The writer makes progress if it commits, or if it has nothing to commit.
        if self.writer.pending_count() == 0 or self.writer.commits_done_recently(out.stall_after_s or 60):
            out.progress()
        if self.uplink is not None:
            up = self.health["uplink"]
            up.state = "running" if self.uplink.alive else "failed"
            up.last_error = self.uplink.last_error
            up.last_progress = self.uplink.progress_mono

    def healthy(self) -> bool:
        """Every component shows progress: only then is the systemd watchdog petted."""
        self._refresh_thread_health()
        now = time.monotonic()
        return all(h.state != "failed" and not h.stalled(now) for h in self.health.values())

    # -- running ----------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("stop requested: shutting down in stages (again to force)")
            self._stop.set()
        else:
            log.warning("second stop request: exiting now")
            self.notifier.stopping("forced exit")
            os._exit(130)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    async def run(self) -> None:
        """Run until request_stop(); then shut down in stages."""
        self.writer.start()
        if self.store.report.quarantined_to:
            self.pipeline.submit(
                Event(
                    GATEWAY_SOURCE,
                    "outbox_replaced",
                    self.clock.time_ms(),
                    {
                        "moved_to": self.store.report.quarantined_to,
                        "reason": self.store.report.quarantine_reason,
                    },
                    "warning",
                )
            )
        self._loop = asyncio.get_running_loop()
        if self.uplink is not None and self.config.commands.enabled:
            self.uplink.on_command = self._command_arrived
        if self.uplink is not None:
            self.uplink.start()
        await self.control.start()
        async with asyncio.TaskGroup() as group:
            self._group = group
            for cfg in self.config.sources:
                if cfg.enabled:
                    self._start_source(cfg)
            fire_tasks = await self._start_fire_lanes(group)
            face_tasks = await self._start_face_access(group)
            helpers = [
                *fire_tasks,
                *face_tasks,
                group.create_task(self._status_loop(), name="status"),
                group.create_task(self._stats_loop(), name="stats"),
                group.create_task(self._watchdog_loop(), name="watchdog"),
                group.create_task(self._tick_loop(), name="processor-ticks"),
            ]
            self.state = "running"
            self.notifier.ready(self._status_line())
            log.info(
                "lintel %s running: gateway %s/%s, %d sources, boot reason %s",
                __version__,
                self.config.gateway.site,
                self.config.gateway.id,
                len(self._source_tasks),
                self.boot_reason,
            )
            await self._stop.wait()
            await self._shutdown(list(self._source_tasks.values()), helpers)

    async def _shutdown(self, sources: list[asyncio.Task[None]], helpers: list[asyncio.Task[None]]) -> None:
        budget = self.config.runtime.shutdown_timeout_s
        deadline = time.monotonic() + budget
        self.state = "stopping"
        self.notifier.stopping("stopping: sources")
        stage_start = time.monotonic()
        for task in sources:
            task.cancel()
        if sources:
            await asyncio.wait(sources, timeout=budget * 0.2)
        log.info("shutdown: sources stopped in %.2f s", time.monotonic() - stage_start)
        await self.control.close()
        if self.care is not None:
            self.care.close(self.clock.time_ms())
        self.notifier.status("stopping: committing queued records")
        stage_start = time.monotonic()
        left = max(0.1, (deadline - time.monotonic()) * 0.4)
        flushed = await asyncio.to_thread(self.writer.flush, left)
        log.info(
            "shutdown: outbox %s in %.2f s",
            "committed" if flushed else "NOT committed",
            time.monotonic() - stage_start,
        )
        if self.uplink is not None:
            self.notifier.status("stopping: finishing in-flight messages")
            stage_start = time.monotonic()
            left = max(0.1, (deadline - time.monotonic()) * 0.8)
            await asyncio.to_thread(self.uplink.stop, left)
            log.info("shutdown: uplink closed in %.2f s", time.monotonic() - stage_start)
        for task in helpers:
            task.cancel()
        await asyncio.to_thread(self.writer.stop, max(0.1, deadline - time.monotonic()))
        if self.fire is not None:
            self.fire.close()
        if self.faces is not None:
            self.faces.close()
        if self.engine is not None:
            self.engine.close()
        self.state_store.close()
        self.state = "stopped"
        write_status(self.loaded.status_path, self.status_body())
        log.info("lintel stopped")

    def _start_source(self, cfg: Any) -> None:
        assert self._group is not None
        self._source_tasks[cfg.id] = self._group.create_task(self._run_source(cfg), name=f"source:{cfg.id}")

    async def _stop_source(self, source_id: str) -> None:
        task = self._source_tasks.pop(source_id, None)
        self.health.pop(f"source:{source_id}", None)
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=self.config.runtime.shutdown_timeout_s)

    async def _run_source(self, cfg: Any) -> None:
        health = ComponentHealth(f"source:{cfg.id}", stall_after_s=self.config.runtime.stall_after_s)
        self.health[health.name] = health
        rt = self.config.runtime
        policy = RestartPolicy(rt.restart_budget, rt.restart_window_s, rt.restart_initial_s, rt.restart_max_s)
        ctx = SourceContext(cfg.id, self.clock, self.pipeline.submit, health.progress)

        async def run_once() -> None:
            source = registry.create_source(cfg)
            if isinstance(source, FrameSource):
                self.frames.attach(cfg.id, source)
            try:
                await source.run(ctx)
            finally:
                if isinstance(source, FrameSource):
                    self.frames.detach(cfg.id, source)

        await supervise(health, run_once, policy)

    def _status_line(self) -> str:
        snap = self.writer.snapshot()
        backlog = sum(snap["rows"].values())
        uplink = self.uplink.state if self.uplink else "no broker configured"
        return f"{self.state}; outbox {backlog} messages; uplink {uplink}"

    async def _status_loop(self) -> None:
        path = self.loaded.status_path
        while True:
            try:
                write_status(path, self.status_body())
            except OSError as exc:
                log.warning("cannot write status file %s: %s", path, exc)
            self.notifier.status(self._status_line())
            await asyncio.sleep(self.config.runtime.status_interval_s)

    async def _stats_loop(self) -> None:
        interval = self.config.mqtt.stats_interval_s if self.config.mqtt else 60.0
        while True:
            await asyncio.sleep(interval)
            body = self.status_body()
            self.writer.submit_stats(
                {
                    k: body[k]
                    for k in ("uptime_s", "boot_reason", "components", "outbox", "uplink", "pipeline")
                }
            )

    async def _watchdog_loop(self) -> None:
        usec = self.notifier.watchdog_usec
        if not usec:
            return
        interval = usec / 1_000_000 / 2
        unhealthy_logged = False
        while True:
            if self.healthy():
                self.notifier.watchdog()
                unhealthy_logged = False
            elif not unhealthy_logged:
                bad = [
                    h.name for h in self.health.values() if h.state == "failed" or h.stalled(time.monotonic())
                ]
                log.error("not petting the systemd watchdog: no progress from %s", ", ".join(bad))
                unhealthy_logged = True
            await asyncio.sleep(interval)

    # -- commands -----------------------------------------------------------------------------------
    def _command_arrived(self, payload: bytes) -> None:
        """Uplink thread -> event loop: run the command there (handlers use the loop's objects)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._spawn_command, payload)

    def _spawn_command(self, payload: bytes) -> None:
        if self._group is not None and self.state == "running":
            self._group.create_task(self.router.handle(payload), name="command")

    async def reload(self, toml_text: str | None, expect_sha256: str | None) -> dict[str, Any]:
        """Validate a new config, then apply it atomically; the old one stays on any failure."""
        async with self._reload_lock:
            return await self._reload(toml_text, expect_sha256)

    async def _reload(self, toml_text: str | None, expect_sha256: str | None) -> dict[str, Any]:
        old = self.loaded
        if expect_sha256 and expect_sha256 != old.sha256:
            raise Rejected(f"config changed meanwhile: the running config is {old.sha256}")
        path = old.path
        if toml_text is None:
            if path is None:
                raise Rejected("no config file to re-read: send config_toml")
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise Rejected(f"cannot read {path}: {exc.strerror}") from None
        else:
            data = toml_text.encode()
        try:
            parsed = parse_config(data, str(path or "config"), old.base_dir)
            new = LoadedConfig(parsed.config, path, old.base_dir, parsed.sha256)
            problems = file_problems(new)
            if problems:
                raise ConfigError(problems, str(path))
        except ConfigError as exc:
            shown = "; ".join(str(p) for p in exc.problems[:5])
            more = f" (+{len(exc.problems) - 5} more)" if len(exc.problems) > 5 else ""
            raise Rejected(f"invalid config: {shown}{more}") from None
        if new.sha256 == old.sha256:
            return {"changed": False, "config_sha256": old.sha256}
        fixed = [name for name in RESTART_SECTIONS if getattr(old.config, name) != getattr(new.config, name)]
        if old.config.commands.enabled != new.config.commands.enabled:
            fixed.append("commands.enabled")
        if fixed:
            raise Rejected(f"needs a restart to change: {', '.join(fixed)} (systemctl restart lintel)")
        now = self.clock.time_ms()
        old_sources = {c.id: c for c in old.config.sources if c.enabled}
        new_sources = {c.id: c for c in new.config.sources if c.enabled}
        stop = [sid for sid, c in old_sources.items() if new_sources.get(sid) != c]
        start = [c for sid, c in new_sources.items() if old_sources.get(sid) != c]
        saved = (self.loaded, self.config, self.pipeline.processors, self.care, self.rules, self.doors)
        try:
            for cfg in start:
                registry.create_source(cfg)  # constructing catches what validation cannot
            if self.care is not None:
                self.care.save(now)
            processors = self._build_processors(new.config, now)
            doors = Doors(new.config.doors, self.clock, self.pipeline.submit)
        except Exception as exc:
            self.loaded, self.config, self.pipeline.processors, self.care, self.rules, self.doors = saved
            log.exception("reload: the new config could not be built; the old one stays")
            raise Failed(f"the new config could not be built, the old one stays: {exc}") from None
        backup = self._write_config(path, data) if toml_text is not None and path is not None else None
        try:
            self.loaded, self.config = new, new.config
            self.pipeline.processors = processors
            self.doors = doors
            self._apply_command_settings()
            logging.getLogger().setLevel(new.config.log.level.upper())
            for sid in stop:
                await self._stop_source(sid)
            for cfg in start:
                self._start_source(cfg)
        except Exception as exc:
            log.exception("reload failed while applying; rolling back")
            self.loaded, self.config, self.pipeline.processors, self.care, self.rules, self.doors = saved
            self._apply_command_settings()
            if backup is not None and path is not None:
                os.replace(backup, path)
            for cfg in start:
                await self._stop_source(cfg.id)
            for sid in stop:
                self._start_source(old_sources[sid])
            raise Failed(f"applying the new config failed, the old one is back: {exc}") from None
        restarted = sorted({*stop, *(c.id for c in start)})
        self.pipeline.submit(
            Event(
                GATEWAY_SOURCE,
                "config_reloaded",
                self.clock.time_ms(),
                {"config_sha256": new.sha256, "previous_sha256": old.sha256, "sources_restarted": restarted},
            )
        )
        log.info(
            "config reloaded (%s); sources restarted: %s", new.sha256[:12], ", ".join(restarted) or "none"
        )
        return {"changed": True, "config_sha256": new.sha256, "sources_restarted": restarted}

    def _apply_command_settings(self) -> None:
        """Point the command router at the current config's [commands] and parts."""
        cmd = self.config.commands
        self.router.allow = set(cmd.allow)
        self.router.max_per_minute = cmd.max_per_minute
        self.router.guard.max_age_ms = int(cmd.max_age_s * 1000)
        self.router.guard.max_skew_ms = int(cmd.max_skew_s * 1000)
        self.router.handlers = build_handlers(self)

    @staticmethod
    def _write_config(path: Path, data: bytes) -> Path:
        """Replace the config file atomically, keeping the previous one as `<name>.bak`."""
        backup = path.with_name(path.name + ".bak")
        if path.exists():
            replace_durably(backup, path.read_bytes())
        replace_durably(path, data)
        return backup

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.pipeline.tick(self.clock.time_ms())


async def run_daemon(daemon: Daemon, early_stops: int = 0) -> None:
    """Run with SIGTERM/SIGINT handlers; `early_stops` counts signals that came during start-up."""
    daemon.install_signal_handlers()
    for _ in range(early_stops):
        daemon.request_stop()
    await daemon.run()
