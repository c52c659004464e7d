"""`reload_config`: validate a new config, then apply it all-or-nothing.

What a running gateway may change: the sources (restarted one by one), alarm rules, care settings
and door timings. Everything else needs a restart (`RESTART_SECTIONS`, and a door's wiring). The new
lanes' processors are built before anything is touched; a failure leaves every object as it was.
Doors release their relays before any source is stopped (a bus restart cannot cut a pulse short
with the strike energised).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import registry
from gateway.config import LoadedConfig, parse_config
from gateway.config.loader import file_problems
from gateway.core import ConfigError, Event
from gateway.core.commands import Failed, Rejected
from gateway.core.files import replace_durably
from gateway.lanes.registry import LANES, build

if TYPE_CHECKING:
    from gateway.runtime.daemon import Daemon

log = logging.getLogger("lintel.daemon")

GATEWAY_SOURCE = "gateway"
# Sections a running daemon cannot change: reload_config refuses them (restart the service).
# [commands] among them: a key allowed reload_config must not be able to widen its own roles.
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
)
# Lanes whose pipeline steps a reload rebuilds from the new config.
RELOADED_LANES = ("care", "rules")


def _read(old: LoadedConfig, toml_text: str | None, expect_sha256: str | None) -> tuple[LoadedConfig, bytes]:
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
    return new, data


def _needs_restart(old: Any, new: Any) -> list[str]:
    fixed = [name for name in RESTART_SECTIONS if getattr(old, name) != getattr(new, name)]
    old_wiring = {d.id: d.relay for d in old.doors}
    if old_wiring != {d.id: d.relay for d in new.doors}:
        fixed.append("doors (ids or relay wiring)")
    return fixed


async def reload_config(daemon: Daemon, toml_text: str | None, expect_sha256: str | None) -> dict[str, Any]:
    old = daemon.loaded
    new, data = _read(old, toml_text, expect_sha256)
    if new.sha256 == old.sha256:
        return {"changed": False, "config_sha256": old.sha256}
    fixed = _needs_restart(old.config, new.config)
    if fixed:
        raise Rejected(f"needs a restart to change: {', '.join(fixed)} (systemctl restart lintel)")
    lanes = daemon.lanes
    old_sources = {c.id: c for c in old.config.sources if c.enabled}
    new_sources = {c.id: c for c in new.config.sources if c.enabled}
    stop = [sid for sid, c in old_sources.items() if new_sources.get(sid) != c]
    start = [c for sid, c in new_sources.items() if old_sources.get(sid) != c]
    # Build everything new before touching anything: a failure here changes nothing.
    for name in RELOADED_LANES:
        component = lanes.component(name)
        if component is not None:
            await component.stop()  # saves its timers, so the new one starts from them
    try:
        for cfg in start:
            registry.create_source(cfg)  # constructing catches what validation cannot
        rebuilt = {
            spec.name: build(spec, new.config, lanes.deps)
            for spec in LANES
            if spec.name in RELOADED_LANES and getattr(new.config, spec.section)
        }
    except Exception as exc:
        log.exception("reload: the new config could not be built; the old one stays")
        raise Failed(f"the new config could not be built, the old one stays: {exc}") from None
    path = old.path
    if toml_text is not None and path is not None:
        try:
            _write_config(path, data)
        except OSError as exc:
            raise Failed(f"cannot write {path} ({exc.strerror}): nothing changed") from None
    for name in RELOADED_LANES:
        lanes.lanes.pop(name, None)
    lanes.lanes.update(rebuilt)
    daemon.loaded = new
    daemon.core.loaded = new
    daemon.core.set_processors(lanes.processors, daemon.extra_processors)
    doors = lanes.component("doors")
    if doors is not None:
        doors.tune(new.config.doors)  # type: ignore[attr-defined]
        if stop:
            await doors.make_safe()  # type: ignore[attr-defined]
    daemon.refresh_handlers()
    logging.getLogger().setLevel(new.config.log.level.upper())
    await daemon.sources.stop(stop, new.config.runtime.shutdown_timeout_s)
    for cfg in start:
        daemon.sources.start(cfg)
    restarted = sorted({*stop, *(c.id for c in start)})
    body = {"config_sha256": new.sha256, "previous_sha256": old.sha256, "sources_restarted": restarted}
    daemon.core.pipeline.submit(Event(GATEWAY_SOURCE, "config_reloaded", daemon.clock.time_ms(), body))
    log.info("config reloaded (%s); sources restarted: %s", new.sha256[:12], ", ".join(restarted) or "none")
    return {"changed": True, "config_sha256": new.sha256, "sources_restarted": restarted}


def _write_config(path: Path, data: bytes) -> Path:
    """Replace the config file atomically, keeping the previous one as `<name>.bak`."""
    backup = path.with_name(path.name + ".bak")
    if path.exists():
        replace_durably(backup, path.read_bytes())
    replace_durably(path, data)
    return backup
