"""Reloading the config of a running gateway, all-or-nothing.

Two ways in, with different powers (README "Changing the config"):

- **Remote** (`reload_config` with `config_toml`): only tunables may change (gateway.config.overlay).
  The text is validated and compared with the running config before anything is read, built or
  written; a change beyond the tunables is refused naming the sections, and no file it names is
  ever opened. An accepted config is kept in the overlay under `state_dir`, never in the
  installer's file.
- **Local** (SIGHUP, or `reload_config` without text): the installer's file is read again, with its
  files checked. Sources may change (each changed source restarts); sections in `RESTART_SECTIONS`
  and a door's wiring need a restart.

Either way everything new is built before anything is touched: the lanes a reload rebuilds save a
checkpoint of their timers (which changes nothing they do), their successors are built from it, and
only then is anything stopped, swapped or written. A failure before the swap leaves every object as
it was. Doors release their relays before any source stops.

The interface (for what builds on reload, e.g. signed deployments): a `Reloader` gets the running
parts it may touch (the lanes and sources, and two callables: `running()` gives the config in force,
`applied(new)` installs a new one in the daemon) and offers one call, `reload(toml_text,
expect_sha256)`, serialised by its own lock, which returns a `ReloadResult` or raises `Rejected`
(refused: nothing read or built) / `Failed` (could not be built or kept: nothing changed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.config import LoadedConfig, load_config, parse_config
from gateway.config import driver_registry as registry
from gateway.config.lane_registry import LANES, build, sections, tuned_changes
from gateway.config.model import SourceConfig
from gateway.config.overlay import apply_overlay, overlay_path, untunable_changes, write_overlay
from gateway.core import Clock, ConfigError, Event, Record
from gateway.core.commands import Failed, Rejected
from gateway.lanes import Lane
from gateway.runtime.lanes import Lanes
from gateway.runtime.sources import Sources

log = logging.getLogger("lintel.daemon")

GATEWAY_SOURCE = "gateway"
# What even a local reload cannot change in a running gateway (restart the service).
# The core's sections, plus those of the lanes the registry marks `restart`.
RESTART_SECTIONS = (
    "gateway",
    "outbox",
    "mqtt",
    "runtime",
    "commands",
    "bridges",  # built once with the encoder the outbox writer holds
    *sections("restart"),
)
# Lanes whose pipeline steps a reload rebuilds from the new config (registry: `rebuild`).
RELOADED_LANES = tuple(spec.name for spec in LANES if spec.reload == "rebuild")


def _invalid(exc: ConfigError) -> Rejected:
    shown = "; ".join(str(p) for p in exc.problems[:5])
    more = f" (+{len(exc.problems) - 5} more)" if len(exc.problems) > 5 else ""
    return Rejected(f"invalid config: {shown}{more}")


def _remote(old: LoadedConfig, toml_text: str) -> LoadedConfig:
    """The remote config, refused unless it changes tunables only. Reads no file."""
    data = toml_text.encode()
    try:
        parsed = parse_config(data, "config_toml", old.base_dir)
    except ConfigError as exc:
        raise _invalid(exc) from None
    changed = untunable_changes(old.config, parsed.config)
    if changed:
        raise Rejected(
            f"not tunable remotely: {', '.join(changed)} (change them in the local config file on the "
            "gateway, then restart or send SIGHUP)"
        )
    return LoadedConfig(parsed.config, old.path, old.base_dir, parsed.sha256, old.file_sha256)


def _local(old: LoadedConfig) -> LoadedConfig:
    if old.path is None:
        raise Rejected("no local config file to re-read: send config_toml")
    try:
        new = apply_overlay(load_config(old.path))
    except ConfigError as exc:
        raise _invalid(exc) from None
    fixed = [name for name in RESTART_SECTIONS if getattr(old.config, name) != getattr(new.config, name)]
    fixed += tuned_changes(old.config, new.config)  # the doors' wiring (their timings are tuned)
    if fixed:
        raise Rejected(f"needs a restart to change: {', '.join(fixed)} (systemctl restart lintel)")
    return new


@dataclass(frozen=True, slots=True)
class ReloadResult:
    changed: bool
    config_sha256: str
    previous_sha256: str | None = None
    sources_restarted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """The command result (`reload_config`): `changed`, `config_sha256`, and when changed the
        sources restarted."""
        if not self.changed:
            return {"changed": False, "config_sha256": self.config_sha256}
        return {
            "changed": True,
            "config_sha256": self.config_sha256,
            "sources_restarted": self.sources_restarted,
        }


@dataclass(eq=False)
class Reloader:
    """Applies a new config to the running parts it is given, all-or-nothing (module docstring)."""

    lanes: Lanes
    sources: Sources
    clock: Clock
    emit: Callable[[Record], bool]
    running: Callable[[], LoadedConfig]  # the config in force
    applied: Callable[[LoadedConfig], None]  # installs a new config in the daemon
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def reload(self, toml_text: str | None, expect_sha256: str | None) -> ReloadResult:
        """Remote text (tunables only) or, with None, the local file again; see the module docstring."""
        async with self._lock:
            return await self._reload(toml_text, expect_sha256)

    async def _reload(self, toml_text: str | None, expect_sha256: str | None) -> ReloadResult:
        old = self.running()
        if expect_sha256 and expect_sha256 != old.sha256:
            raise Rejected(f"config changed meanwhile: the running config is {old.sha256}")
        new = _remote(old, toml_text) if toml_text is not None else _local(old)
        if new.sha256 == old.sha256:
            return ReloadResult(False, old.sha256)
        old_sources = {c.id: c for c in old.config.sources if c.enabled}
        new_sources = {c.id: c for c in new.config.sources if c.enabled}
        stop = [sid for sid, c in old_sources.items() if new_sources.get(sid) != c]
        start = [c for sid, c in new_sources.items() if old_sources.get(sid) != c]
        rebuilt = self._build(new, start)  # a failure here changes nothing
        if toml_text is not None:
            try:
                write_overlay(new.file_sha256, overlay_path(new), toml_text.encode())
            except OSError as exc:
                raise Failed(f"cannot keep the remote tunables ({exc.strerror}): nothing changed") from None
        await self._swap(new, rebuilt)
        await self._restart_sources(stop, start, new.config.runtime.shutdown_timeout_s)
        restarted = sorted({*stop, *(c.id for c in start)})
        body = {"config_sha256": new.sha256, "previous_sha256": old.sha256, "sources_restarted": restarted}
        self.emit(Event(GATEWAY_SOURCE, "config_reloaded", self.clock.time_ms(), body))
        log.info(
            "config reloaded (%s); sources restarted: %s", new.sha256[:12], ", ".join(restarted) or "none"
        )
        return ReloadResult(True, new.sha256, old.sha256, restarted)

    def _build(self, new: LoadedConfig, start: list[SourceConfig]) -> dict[str, Lane]:
        """The new sources constructed (they catch what validation cannot) and the reloaded lanes
        rebuilt from a checkpoint of their predecessors' timers; nothing running is touched."""
        try:
            for cfg in start:
                registry.create_source(cfg)
            self.lanes.checkpoint(RELOADED_LANES)
            return {
                spec.name: build(spec, new.config, self.lanes.deps)
                for spec in LANES
                if spec.name in RELOADED_LANES and spec.section_of(new.config)
            }
        except Exception as exc:
            log.exception("reload: the new config could not be built; the old one stays")
            raise Failed(f"the new config could not be built, the old one stays: {exc}") from None

    async def _swap(self, new: LoadedConfig, rebuilt: dict[str, Lane]) -> None:
        await self.lanes.replace(rebuilt, [n for n in RELOADED_LANES if n not in rebuilt])
        self.applied(new)  # the daemon's config, pipeline steps and command handlers
        if self.lanes.doors is not None:
            self.lanes.doors.tune(new.config.doors)
        logging.getLogger().setLevel(new.config.log.level.upper())

    async def _restart_sources(self, stop: list[str], start: list[SourceConfig], timeout_s: float) -> None:
        doors = self.lanes.doors
        if doors is not None and stop:
            await doors.make_safe()
        await self.sources.stop(stop, timeout_s)
        for cfg in start:
            self.sources.start(cfg)
