"""Write-ahead files of a deployment, so a power cut at any step comes back on a config that worked.

All under `<state_dir>/deploy/`, each replaced atomically and synced (mode 0600):

- `pending.json`  a deployment that passed its checks, with the local file's sha256 it was checked
                  over and its `phase`: `staged` (not yet run) or `trying` (running on probation).
                  A start that finds `trying` knows the process ended during probation: rollback.
- `lkg.json`      the last-known-good deployment (passed probation) with its local sha256. Absent:
                  the local file alone is the last-known-good. It stays until the next success.
- `handled.json`  the highest deployment version handled (applied, rejected or rolled back): a
                  deployment whose version is not above it is stale or replayed.
- `outcome.json`  outcomes decided before the daemon could report them (a rollback at start, a
                  local edit that superseded a deployment), reported and removed once it runs.

Sealed secrets stay sealed in these files; opened ones live only in the secret store.

Each file carries its format version (`format`, `FORMAT`; absent: 1). One of a newer format (a
newer release wrote it) is left alone and read as absent, the safe side; while this release is on
probation it writes the format the previous release reads (`gateway.releases.formats`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.deployment import Deployment
from gateway.core.files import replace_durably
from gateway.releases.formats import Format, FormatError, FormatGate

log = logging.getLogger("lintel.config")

FOLDER = "deploy"
FORMAT = Format("deployment", 1, runs_on=1)
STAGED, TRYING = "staged", "trying"


@dataclass(frozen=True, slots=True)
class Recorded:
    """A deployment on disk, with the local file's sha256 it was made over."""

    deployment: Deployment
    local_sha256: str
    phase: str = STAGED


class DeployFiles:
    def __init__(self, state_dir: Path, gate: FormatGate | None = None) -> None:
        self.folder = state_dir / FOLDER
        self.gate = gate or FormatGate.at(state_dir)

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def _read(self, name: str) -> dict[str, Any] | None:
        path = self._path(name)
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            # A torn or unreadable file cannot be trusted: treat it as absent (the safe side: the
            # local file, or the last-known-good), and say so.
            log.error("deployment file %s unreadable (%s): ignored", path, exc)
            return None
        if not isinstance(doc, dict):
            return None
        found = doc.get("format", 1)
        try:
            self.gate.check(FORMAT, found if isinstance(found, int) else FORMAT.current + 1, path)
        except FormatError as exc:
            log.error("%s: ignored", exc)
            return None
        return doc

    def _write(self, name: str, doc: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(name)
        body = {**doc, "format": self.gate.writes(FORMAT)}
        replace_durably(path, json.dumps(body, sort_keys=True).encode())
        os.chmod(path, 0o600)

    def _remove(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            return
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _recorded(self, name: str) -> Recorded | None:
        doc = self._read(name)
        if doc is None:
            return None
        try:
            dep = Deployment.from_json(doc["deployment"])
            return Recorded(dep, str(doc["local_sha256"]), str(doc.get("phase", STAGED)))
        except (KeyError, TypeError, ValueError) as exc:
            log.error("deployment file %s malformed (%s): ignored", self._path(name), exc)
            return None

    def _record(self, name: str, rec: Recorded) -> None:
        self._write(
            name,
            {"deployment": rec.deployment.to_json(), "local_sha256": rec.local_sha256, "phase": rec.phase},
        )

    # -- pending / last-known-good ---------------------------------------------------------------------
    def pending(self) -> Recorded | None:
        return self._recorded("pending")

    def stage(self, dep: Deployment, local_sha256: str) -> None:
        self._record("pending", Recorded(dep, local_sha256, STAGED))

    def mark_trying(self, rec: Recorded) -> None:
        self._record("pending", Recorded(rec.deployment, rec.local_sha256, TRYING))

    def drop_pending(self) -> None:
        self._remove("pending")

    def lkg(self) -> Recorded | None:
        return self._recorded("lkg")

    def promote(self, rec: Recorded) -> None:
        """The pending deployment passed probation: it becomes the last-known-good (then no pending)."""
        self._record("lkg", Recorded(rec.deployment, rec.local_sha256, "good"))
        self._remove("pending")

    def drop_lkg(self) -> None:
        self._remove("lkg")

    # -- versions and outcomes -------------------------------------------------------------------------
    def handled_version(self) -> int:
        doc = self._read("handled") or {}
        version = doc.get("version", 0)
        return version if isinstance(version, int) else 0

    def mark_handled(self, version: int) -> None:
        if version > self.handled_version():
            self._write("handled", {"version": version})

    def add_outcome(self, kind: str, body: dict[str, Any]) -> None:
        outcomes = self.outcomes()
        outcomes.append({"kind": kind, **body})
        self._write("outcome", {"outcomes": outcomes[-20:]})

    def outcomes(self) -> list[dict[str, Any]]:
        doc = self._read("outcome") or {}
        found = doc.get("outcomes")
        return [o for o in found if isinstance(o, dict)] if isinstance(found, list) else []

    def clear_outcomes(self) -> None:
        self._remove("outcome")
