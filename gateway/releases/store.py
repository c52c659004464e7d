"""The release store: `/opt/lintel/releases/<version>` side by side, and the links that choose one.

    /opt/lintel/releases/<version>/   src/ (gateway, drivers, models), venv/, bin/lintel, RELEASE
    /opt/lintel/current  -> releases/<version>   what the unit runs (ExecStart=/opt/lintel/current/bin/lintel)
    /opt/lintel/committed -> releases/<version>  the last release that passed probation; the unit's boot
                                                 guard runs from it, so a release too broken to import
                                                 still gets rolled back

A release folder is built beside the others under a hidden `.partial-<version>` name and renamed into
place only when complete (its `RELEASE` file is written last), so a power cut while installing leaves
a partial folder that the next install removes, never a release that looks whole. Installing never
writes into a release folder that exists: the running one is never touched. Links are switched with
rename(2) (`durable.point_link`). Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.releases.durable import fsync_dir, point_link, write_file
from gateway.releases.state import check_version

DEFAULT_ROOT = Path("/opt/lintel")
MARKER = "RELEASE"


class ReleaseError(Exception):
    """A release operation that cannot be done; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ReleaseInfo:
    version: str
    path: Path
    installed_ms: int
    source: str  # the package (file name and sha256) or folder it was installed from


class ReleaseStore:
    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = root
        self.releases = root / "releases"
        self.current_link = root / "current"
        self.committed_link = root / "committed"

    # -- reading -------------------------------------------------------------------------------------
    def path(self, version: str) -> Path:
        return self.releases / check_version(version)

    def info(self, version: str) -> ReleaseInfo | None:
        """The installed, complete release `version`; None if absent or half built."""
        path = self.path(version)
        try:
            body = json.loads((path / MARKER).read_text())
            return ReleaseInfo(version, path, int(body["installed_ms"]), str(body["source"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def versions(self) -> list[str]:
        """Complete releases, oldest install first."""
        found: list[ReleaseInfo] = []
        if self.releases.is_dir():
            for entry in self.releases.iterdir():
                if entry.name.startswith("."):
                    continue
                try:
                    info = self.info(entry.name)
                except ValueError:
                    continue
                if info is not None:
                    found.append(info)
        return [i.version for i in sorted(found, key=lambda i: (i.installed_ms, i.version))]

    def _link_version(self, link: Path) -> str | None:
        try:
            target = os.readlink(link)
        except OSError:
            return None
        name = Path(target).name
        try:
            check_version(name)
        except ValueError:
            return None
        return name if self.info(name) is not None else None

    def current(self) -> str | None:
        """The release the unit runs; None if the link is missing or names no complete release."""
        return self._link_version(self.current_link)

    def committed(self) -> str | None:
        return self._link_version(self.committed_link)

    # -- switching -----------------------------------------------------------------------------------
    def _point(self, link: Path, version: str) -> None:
        if self.info(version) is None:
            raise ReleaseError(f"release {version} is not installed (installed: {self.versions() or 'none'})")
        point_link(link, f"releases/{version}")

    def switch(self, version: str) -> None:
        """Make `version` the one the unit runs (atomic; takes effect at the service's next start)."""
        self._point(self.current_link, version)

    def commit(self, version: str) -> None:
        self._point(self.committed_link, version)

    # -- installing ----------------------------------------------------------------------------------
    def begin(self, version: str) -> Path:
        """A fresh, empty partial folder for `version`; refuses a version already installed."""
        if self.info(version) is not None:
            raise ReleaseError(
                f"release {version} is already installed at {self.path(version)}; an installed release "
                "is never rewritten (remove it first with `lintel release remove` if it is not running)"
            )
        self.releases.mkdir(parents=True, exist_ok=True)
        self.remove_partials()
        leftover = self.path(version)  # a folder without its RELEASE file: an older half install
        if leftover.exists():
            shutil.rmtree(leftover)
        partial = self.releases / f".partial-{version}"
        partial.mkdir(mode=0o755)
        return partial

    def finish(self, partial: Path, version: str, source: str) -> ReleaseInfo:
        """Write the RELEASE file (last), then rename the partial folder into place."""
        installed_ms = int(time.time() * 1000)
        body = {"version": version, "installed_ms": installed_ms, "source": source}
        write_file(partial / MARKER, json.dumps(body, indent=1).encode(), 0o644)
        os.replace(partial, self.path(version))
        fsync_dir(self.releases)
        return ReleaseInfo(version, self.path(version), installed_ms, source)

    def remove_partials(self) -> list[str]:
        gone = []
        if self.releases.is_dir():
            for entry in self.releases.iterdir():
                if entry.name.startswith(".partial-"):
                    shutil.rmtree(entry, ignore_errors=True)
                    gone.append(entry.name)
        return gone

    def remove(self, version: str, keep: set[str]) -> None:
        if version in keep or version in (self.current(), self.committed()):
            raise ReleaseError(f"release {version} is in use (current, committed or in an update): kept")
        path = self.path(version)
        # renamed away first: a power cut mid-delete leaves a hidden partial, not a broken release
        doomed = self.releases / f".partial-{version}"
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def prune(self, keep_count: int, keep: set[str]) -> list[str]:
        """Remove the oldest releases beyond `keep_count`, never current, committed or `keep`."""
        protected = {v for v in (self.current(), self.committed(), *keep) if v}
        removable = [v for v in self.versions() if v not in protected]
        surplus = len(removable) + len(protected) - keep_count
        gone = removable[: max(0, surplus)]
        for version in gone:
            self.remove(version, protected)
        return gone
