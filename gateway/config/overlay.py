"""Remote tunables: what an operator may change over MQTT, and where it is kept.

A remote `reload_config` may change only the *tunables*: alarm rules, the care watch, door timings
(`pulse_s`) and the log level. Anything else — sources, cameras, a door's wiring, any `*_file` key,
URLs, `[commands]` — changes only in the installer's local file, applied by a restart or SIGHUP.
A remote config is compared with the running one before anything is read or built, so it can never
make the gateway open a file or a URL it names.

The installer's file is never rewritten by a remote reload (under the README's install it is not
even writable by the service). The accepted remote config is kept as an *overlay* in
`<state_dir>/config.overlay.toml`, stamped with the sha256 of the local file it was made against.
At start (and on SIGHUP) the overlay applies only while the local file is that same file, and only
if it still changes nothing but tunables; once the installer edits the local file, the local file
wins and the overlay is removed.

Its second line names its format (`# lintel overlay format N`, `FORMAT`; absent: 1). An overlay of a
newer format (written by a newer release) is not applied and left in place; while this release is
on probation it writes the format the previous release reads (`gateway.releases.formats`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

from gateway.config.lane_registry import sections, tuned_changes
from gateway.config.layers import LOCAL, fold, leaf_origins
from gateway.config.loader import LoadedConfig, parse_config
from gateway.config.model import GatewayConfig
from gateway.core.errors import ConfigError
from gateway.core.files import replace_durably
from gateway.releases.formats import Format, FormatError, FormatGate

log = logging.getLogger("lintel.config")

OVERLAY_NAME = "config.overlay.toml"
REMOTE_TUNABLES = "remote tunables"  # the layer's name where `lintel config show --origin` says it
TUNABLE_SECTIONS = (*sections("rebuild"), "log")  # the lanes a reload rebuilds (registry), the log level
_STAMP = "# lintel remote tunables over local config sha256 "
_FORMAT_LINE = b"# lintel overlay format "
FORMAT = Format("overlay", 1, runs_on=1)


def overlay_path(loaded: LoadedConfig) -> Path:
    return loaded.state_dir / OVERLAY_NAME


def untunable_changes(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    """What `new` changes beyond the tunables (section names); empty when a remote reload may."""
    changed = [
        name
        for name in type(old).model_fields
        if name not in (*TUNABLE_SECTIONS, *sections("tune")) and getattr(old, name) != getattr(new, name)
    ]
    return changed + tuned_changes(old, new)


def write_overlay(loaded_local_sha256: str, path: Path, toml_text: bytes) -> None:
    """Keep an accepted remote config (mode 0600, atomically, synced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    version = FormatGate.at(path.parent).writes(FORMAT)
    head = f"{_STAMP}{loaded_local_sha256}\n".encode() + _FORMAT_LINE + f"{version}\n".encode()
    replace_durably(path, head + toml_text)
    os.chmod(path, 0o600)


def apply_overlay(local: LoadedConfig) -> LoadedConfig:
    """The running config: the local file, with the overlay's tunables while it still applies."""
    path = overlay_path(local)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return local
    except OSError as exc:
        log.warning("remote tunables at %s not read (%s): running the local config", path, exc.strerror)
        return local
    first, _, body = data.partition(b"\n")
    try:
        body = overlay_body(body, path)
    except FormatError as exc:
        log.error("%s: running the local config", exc)
        return local
    if first.decode(errors="replace") != f"{_STAMP}{local.sha256}":
        log.warning("the local config changed since the remote tunables were set: they are dropped")
        drop_overlay(local)
        return local
    try:
        over = parse_config(body, str(path), local.base_dir)
    except ConfigError as exc:
        log.warning("remote tunables at %s are invalid (%s): dropped", path, exc.problems[0])
        drop_overlay(local)
        return local
    changed = untunable_changes(local.config, over.config)
    if changed:  # cannot come from our own reload: someone edited the file; never trust it
        log.warning("remote tunables at %s change %s: dropped", path, ", ".join(changed))
        drop_overlay(local)
        return local
    log.info("running with remote tunables from %s", path)
    return with_tunables(local, over)


def overlay_body(body: bytes, path: Path) -> bytes:
    """The overlay's TOML (after the stamp line and its format line); FormatError if this release
    cannot use its format now."""
    found = 1
    if body.startswith(_FORMAT_LINE):
        line, _, body = body[len(_FORMAT_LINE) :].partition(b"\n")
        found = int(line) if line.isdigit() else FORMAT.current + 1
    FormatGate.at(path.parent).check(FORMAT, found, path)
    return body


def peek_overlay(local: LoadedConfig) -> LoadedConfig | None:
    """The config with remote tunables, as the next start would run it; None where they would not
    apply. Read-only (for `lintel config show`): nothing is dropped or logged."""
    try:
        first, _, body = overlay_path(local).read_bytes().partition(b"\n")
    except OSError:
        return None
    if first.decode(errors="replace") != f"{_STAMP}{local.sha256}":
        return None
    try:
        over = parse_config(overlay_body(body, overlay_path(local)), str(overlay_path(local)), local.base_dir)
    except (ConfigError, FormatError):
        return None
    return None if untunable_changes(local.config, over.config) else with_tunables(local, over)


def with_tunables(under: LoadedConfig, over: LoadedConfig) -> LoadedConfig:
    """`over` (a whole config that changes only tunables of `under`) as the running config: the
    same layers mechanism as deployments (`gateway.config.layers`), so each changed tunable is
    named `remote tunables` by `lintel config show --origin`, and `under`'s secrets and origin stay."""
    changed = {
        k: v
        for k, v in over.raw.items()
        if k in (*TUNABLE_SECTIONS, *sections("tune")) and under.raw.get(k) != v
    }
    _, origins = fold(under.raw, changed, REMOTE_TUNABLES, under.origins or leaf_origins(under.raw, LOCAL))
    return replace(
        under,
        config=over.config,
        sha256=over.sha256,
        local_sha256=under.file_sha256,
        raw=over.raw,
        origins=origins,
    )


def drop_overlay(local: LoadedConfig) -> None:
    try:
        overlay_path(local).unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove %s: %s", overlay_path(local), exc.strerror)
