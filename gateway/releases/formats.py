"""Versions of the data formats at rest, and when a release may migrate them (standard library only).

Every persistent format carries its version: the outbox, the state store and the face gallery in
SQLite's `PRAGMA user_version`; the deployment files (`deploy/*.json`) in a `format` field; the remote
tunables overlay in its second line. A release declares, per format, a `Format(name, current,
runs_on)`: `current` is the version it writes, `runs_on` the oldest version it can run on unchanged.

The rule that makes a rollback safe (README "Updates and rollback"): **a release never migrates data
in place while it is on probation.** It runs on the previous format (`runs_on` reaches back at least
one version: expand first, contract in a later release) and migrates at its first start after it
committed. So whatever release the guard goes back to finds data in a format it reads. `FormatGate`
decides, per file, at open:

    found == current                    -> "open"
    found <  current, not on probation  -> "migrate" (the store migrates in place, then opens)
    found <  current, on probation      -> "open" when found >= runs_on (the release runs on it);
                                           else FormatError: this release cannot run before a
                                           migration it may not do yet (on probation: a rollback)
    found >  current                    -> FormatError: written by a newer release; never touched

`writes(fmt)` is the version a writer of whole files (JSON, TOML) stamps: `current`, or `runs_on`
while on probation (what the release it would roll back to reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.releases.state import PROBATION, ROLLBACK_REQUESTED, read_state

OPEN, MIGRATE = "open", "migrate"


class FormatError(Exception):
    """A file in a format this release cannot use now; the message names the file, both versions
    and the fix. The file is left as it was."""


@dataclass(frozen=True, slots=True)
class Format:
    name: str  # "outbox", "state", "gallery", "deployment", "overlay"
    current: int  # the version this release writes
    runs_on: int  # the oldest version this release runs on without migrating it (<= current)

    def __post_init__(self) -> None:
        if not 0 <= self.runs_on <= self.current:
            raise ValueError(f"format {self.name}: runs_on {self.runs_on} must be within 0..{self.current}")


@dataclass(frozen=True, slots=True)
class FormatGate:
    """Whether this process may migrate data in place: not while its release is on probation."""

    version: str  # the running release
    on_probation: bool

    @classmethod
    def at(cls, state_dir: Path, version: str | None = None) -> FormatGate:
        """The gate of release `version` (default: this code's) from the update state in `state_dir`."""
        if version is None:
            from gateway import __version__

            version = __version__
        state = read_state(state_dir)
        trying = state is not None and state.phase in (PROBATION, ROLLBACK_REQUESTED)
        return cls(version, trying and state is not None and state.to_version == version)

    @classmethod
    def free(cls) -> FormatGate:
        """A gate that allows migrations (no release store: a checkout, a test, a fresh file)."""
        from gateway import __version__

        return cls(__version__, False)

    @property
    def may_migrate(self) -> bool:
        return not self.on_probation

    def check(self, fmt: Format, found: int, where: object) -> str:
        """OPEN or MIGRATE for the file `where` holding `fmt` in version `found`; FormatError else."""
        if found == fmt.current:
            return OPEN
        if found > fmt.current:
            raise FormatError(
                f"{where} is in {fmt.name} format {found}, written by a newer Lintel; release "
                f"{self.version} reads formats {fmt.runs_on} to {fmt.current}: update to that release "
                "again (lintel update), or move the file aside to start without it"
            )
        if self.may_migrate:
            return MIGRATE
        if found >= fmt.runs_on:
            return OPEN  # on probation: run on it; migrated at the first start after the commit
        raise FormatError(
            f"{where} is in {fmt.name} format {found}; release {self.version} runs on formats "
            f"{fmt.runs_on} to {fmt.current} and may not migrate it while on probation (a rollback "
            f"must find it as it was): update through a release that runs on format {found} first"
        )

    def writes(self, fmt: Format) -> int:
        """The version to stamp on a file written whole now."""
        return fmt.current if self.may_migrate else fmt.runs_on
