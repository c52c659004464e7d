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

Either way the new lanes' pipeline steps are built before anything is touched: a failure leaves
every object as it was. Doors release their relays before any source stops.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gateway.config import LoadedConfig, load_config, parse_config
from gateway.config import driver_registry as registry
from gateway.config.overlay import (
    apply_overlay,
    overlay_path,
    untunable_changes,
    with_tunables,
    write_overlay,
)
from gateway.core import ConfigError, Event
from gateway.core.commands import Failed, Rejected
from gateway.lanes.registry import LANES, build

if TYPE_CHECKING:
    from gateway.runtime.daemon import Daemon

log = logging.getLogger("lintel.daemon")

GATEWAY_SOURCE = "gateway"
# What even a local reload cannot change in a running gateway (restart the service).
RESTART_SECTIONS = (
    "gateway",
    "outbox",
    "mqtt",
    "runtime",
    "commands",
    "vision",
    "fire_lanes",
    "faces",
    "face_access",
    "bridges",  # built once with the encoder the outbox writer holds
)
# Lanes whose pipeline steps a reload rebuilds from the new config.
RELOADED_LANES = ("care", "rules")


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
    return with_tunables(old, parsed)


def _local(old: LoadedConfig) -> LoadedConfig:
    if old.path is None:
        raise Rejected("no local config file to re-read: send config_toml")
    try:
        new = apply_overlay(load_config(old.path))
    except ConfigError as exc:
        raise _invalid(exc) from None
    fixed = [name for name in RESTART_SECTIONS if getattr(old.config, name) != getattr(new.config, name)]
    if {d.id: d.relay for d in old.config.doors} != {d.id: d.relay for d in new.config.doors}:
        fixed.append("doors (ids or relay wiring)")
    if fixed:
        raise Rejected(f"needs a restart to change: {', '.join(fixed)} (systemctl restart lintel)")
    return new


async def reload_config(daemon: Daemon, toml_text: str | None, expect_sha256: str | None) -> dict[str, Any]:
    old = daemon.loaded
    if expect_sha256 and expect_sha256 != old.sha256:
        raise Rejected(f"config changed meanwhile: the running config is {old.sha256}")
    new = _remote(old, toml_text) if toml_text is not None else _local(old)
    if new.sha256 == old.sha256:
        return {"changed": False, "config_sha256": old.sha256}
    lanes = daemon.lanes
    old_sources = {c.id: c for c in old.config.sources if c.enabled}
    new_sources = {c.id: c for c in new.config.sources if c.enabled}
    stop = [sid for sid, c in old_sources.items() if new_sources.get(sid) != c]
    start = [c for sid, c in new_sources.items() if old_sources.get(sid) != c]
    # Build everything new before touching anything: a failure here changes nothing.
    try:
        for cfg in start:
            registry.create_source(cfg)  # constructing catches what validation cannot
        for name in RELOADED_LANES:
            component = lanes.component(name)
            if component is not None:
                await component.stop()  # saves its timers, so the new one starts from them
        rebuilt = {
            spec.name: build(spec, new.config, lanes.deps)
            for spec in LANES
            if spec.name in RELOADED_LANES and getattr(new.config, spec.section)
        }
    except Exception as exc:
        log.exception("reload: the new config could not be built; the old one stays")
        raise Failed(f"the new config could not be built, the old one stays: {exc}") from None
    if toml_text is not None:
        try:
            write_overlay(new.file_sha256, overlay_path(new), toml_text.encode())
        except OSError as exc:
            raise Failed(f"cannot keep the remote tunables ({exc.strerror}): nothing changed") from None
    await _swap(daemon, new, rebuilt)
    await _restart_sources(daemon, stop, start)
    restarted = sorted({*stop, *(c.id for c in start)})
    body = {"config_sha256": new.sha256, "previous_sha256": old.sha256, "sources_restarted": restarted}
    daemon.core.pipeline.submit(Event(GATEWAY_SOURCE, "config_reloaded", daemon.clock.time_ms(), body))
    log.info("config reloaded (%s); sources restarted: %s", new.sha256[:12], ", ".join(restarted) or "none")
    return {"changed": True, "config_sha256": new.sha256, "sources_restarted": restarted}


async def _swap(daemon: Daemon, new: LoadedConfig, rebuilt: dict[str, Any]) -> None:
    lanes = daemon.lanes
    await lanes.replace(rebuilt, [n for n in RELOADED_LANES if n not in rebuilt])
    daemon.loaded = daemon.core.loaded = new
    daemon.core.set_processors(lanes.processors, daemon.extra_processors)
    doors = lanes.component("doors")
    if doors is not None:
        doors.tune(new.config.doors)  # type: ignore[attr-defined]
    daemon.refresh_handlers()
    logging.getLogger().setLevel(new.config.log.level.upper())


async def _restart_sources(daemon: Daemon, stop: list[str], start: list[Any]) -> None:
    doors = daemon.lanes.component("doors")
    if doors is not None and stop:
        await doors.make_safe()  # type: ignore[attr-defined]
    await daemon.sources.stop(stop, daemon.loaded.config.runtime.shutdown_timeout_s)
    for cfg in start:
        daemon.sources.start(cfg)
