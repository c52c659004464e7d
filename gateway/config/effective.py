"""Which config a starting gateway runs: the local file, a deployment on probation, or the last-known-good.

Decided from the write-ahead files (`deploy_files`) before anything is built:

1. A pending deployment made over another local file than today's: the person on site edited the
   file meanwhile and wins. The deployment is dropped and `config_diverged` reported.
2. A pending deployment already `trying`: the process ended during its probation (a crash, kill -9,
   a power cut, or our own rollback). It is dropped and `config_rolled_back` reported.
3. A pending deployment `staged`: checked again, marked `trying` (durably, before it runs) and run on
   probation. If it no longer passes its checks it is dropped and `config_rejected` reported.
4. Otherwise the last-known-good deployment, if it was made over today's local file (else the local
   edit supersedes it: `config_diverged`); otherwise the local file alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gateway.config.deploy_files import TRYING, DeployFiles, Recorded
from gateway.config.deployment import check, parse_document
from gateway.config.layers import LOCAL, fold, leaf_origins
from gateway.config.loader import LoadedConfig
from gateway.config.secrets import GatewayKey, SecretError, SecretStore
from gateway.core.errors import ConfigError

log = logging.getLogger("lintel.config")


@dataclass(frozen=True, slots=True)
class Start:
    loaded: LoadedConfig
    on_probation: Recorded | None = None  # the deployment this start tries, if any
    previous: LoadedConfig | None = None  # on probation: what would run without it


def _diverged(files: DeployFiles, rec: Recorded, what: str) -> None:
    reason = (
        f"the local config file changed after deployment v{rec.deployment.version} was made over it: "
        "the local file wins"
    )
    log.warning("%s: %s", what, reason)
    files.add_outcome("config_diverged", {"version": rec.deployment.version, "reason": reason})
    files.mark_handled(rec.deployment.version)


def _candidate(rec: Recorded, base: LoadedConfig, key: GatewayKey, store: SecretStore) -> LoadedConfig:
    return check(rec.deployment, base, key, store.load())


def choose(base: LoadedConfig, key: GatewayKey, store: SecretStore, files: DeployFiles) -> Start:
    """The config to start on (see the module doc); records every outcome it decides in `files`."""
    pending = files.pending()
    if pending is not None:
        version = pending.deployment.version
        files.mark_handled(version)  # also when the crash came between staging and marking it
        if pending.local_sha256 != base.file_sha256:
            _diverged(files, pending, "pending deployment dropped")
            files.drop_pending()
        elif pending.phase == TRYING:
            reason = "the gateway stopped during probation (crash, kill, power cut or a failed probation)"
            log.warning("deployment v%d rolled back: %s", version, reason)
            files.add_outcome("config_rolled_back", {"version": version, "reason": reason})
            files.drop_pending()
        else:
            try:
                candidate = _candidate(pending, base, key, store)
            except (ConfigError, SecretError) as exc:
                problems = [str(p) for p in exc.problems] if isinstance(exc, ConfigError) else [str(exc)]
                log.error("deployment v%d no longer valid: %s", version, "; ".join(problems))
                files.add_outcome("config_rejected", {"version": version, "problems": problems})
                files.drop_pending()
            else:
                files.mark_trying(pending)
                log.info("starting on deployment v%d, on probation", version)
                return Start(candidate, files.pending(), _last_known_good(base, key, store, files))
    return Start(_last_known_good(base, key, store, files))


def _last_known_good(
    base: LoadedConfig, key: GatewayKey, store: SecretStore, files: DeployFiles
) -> LoadedConfig:
    lkg = files.lkg()
    if lkg is None:
        return base
    if lkg.local_sha256 != base.file_sha256:
        _diverged(files, lkg, "last-known-good deployment set aside")
        files.drop_lkg()
        return base
    try:
        return _candidate(lkg, base, key, store)
    except (ConfigError, SecretError) as exc:
        log.error(
            "last-known-good deployment v%d cannot run here any more (%s): local config",
            lkg.deployment.version,
            exc,
        )
        return base


@dataclass(frozen=True, slots=True)
class Preview:
    """What a start would run now, as documents (for `lintel config show --origin`); reads only."""

    raw: dict[str, Any]
    origins: dict[str, str]
    notes: list[str]


def preview(base: LoadedConfig, files: DeployFiles) -> Preview:
    """The local file with the last-known-good deployment folded over it where it still applies
    (else with its remote tunables, `gateway.config.overlay`). Nothing is opened, checked or
    written: secrets stay names, the deployment files stay as they are."""
    origins = leaf_origins(base.raw, LOCAL)
    notes: list[str] = []
    pending = files.pending()
    if pending is not None:
        notes.append(f"deployment v{pending.deployment.version} is pending ({pending.phase})")
    lkg = files.lkg()
    if lkg is not None and lkg.local_sha256 != base.file_sha256:
        notes.append(
            f"deployment v{lkg.deployment.version} was made over another local file: the local file wins"
        )
        lkg = None
    if lkg is None:  # the local file, with the remote tunables that still apply to it
        from gateway.config.overlay import peek_overlay

        tuned = peek_overlay(base)
        if tuned is not None:
            return Preview(dict(tuned.raw), dict(tuned.origins), notes)
        return Preview(dict(base.raw), origins, notes)
    try:
        doc = parse_document(lkg.deployment.config_toml)
    except ConfigError as exc:
        notes.append(f"deployment v{lkg.deployment.version} cannot be read: {exc.problems[0]}")
        return Preview(dict(base.raw), origins, notes)
    merged, origins = fold(base.raw, doc, lkg.deployment.label, origins)
    return Preview(merged, origins, notes)
