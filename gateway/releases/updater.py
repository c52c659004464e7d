"""Staging an update (root): install the new release beside the running one, then switch to it on
probation. Used by `lintel update` (local), by the root runner of remote `update` commands, and by
the package's postinst on an upgrade. Standard library only.

`stage` writes the state (`probation`, from, to) before it moves `current`, so a power cut between
the two is finished by the boot guard; the service is then restarted by the caller (systemctl).
An update that cannot even be staged (hash mismatch, not a lintel package, install failed) leaves
`current` alone and records phase `failed` with why, which the running release reports upstream
(`update_failed`), unless another update is still on probation (that one's state is kept).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.releases.install import install
from gateway.releases.package import apt_download, download, extract_payload, inspect
from gateway.releases.state import (
    FAILED,
    PROBATION,
    ROLLBACK_REQUESTED,
    UpdateState,
    check_version,
    read_state,
    write_state,
)
from gateway.releases.store import ReleaseError, ReleaseStore

REQUEST_FILE = "update-request.json"
MAX_REQUEST_BYTES = 4096


@dataclass(frozen=True, slots=True)
class UpdatePolicy:
    probation_s: float = 120.0
    max_boots: int = 3
    keep_releases: int = 3
    allowed_urls: tuple[str, ...] = ()
    max_package_bytes: int = 400 * 1024 * 1024
    apt_options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Origin:
    by: str = "local"  # "local", or the key id that signed the remote command
    command_id: str | None = None


def now_ms() -> int:
    return int(time.time() * 1000)


def stage(
    store: ReleaseStore, state_dir: Path, version: str, policy: UpdatePolicy, origin: Origin
) -> UpdateState:
    """Switch to the installed release `version` on probation (takes effect at the next start)."""
    current = store.current()
    busy = read_state(state_dir)
    if busy is not None and busy.phase in (PROBATION, ROLLBACK_REQUESTED):
        raise ReleaseError(
            f"the update {busy.from_version} -> {busy.to_version} is still {busy.phase.replace('_', ' ')}: "
            "wait for its outcome"
        )
    if current is None:
        raise ReleaseError("no current release to update from (install the package first)")
    if version == current:
        raise ReleaseError(f"release {version} is already running")
    if store.info(version) is None:
        raise ReleaseError(f"release {version} is not installed")
    state = UpdateState(
        PROBATION,
        current,
        version,
        now_ms(),
        policy.probation_s,
        policy.max_boots,
        origin=origin.by,
        command_id=origin.command_id,
    )
    write_state(state_dir, state)
    store.switch(version)
    store.prune(policy.keep_releases, {current, version})
    return state


def install_package(
    store: ReleaseStore,
    deb: Path,
    sha256: str | None,
    *,
    arch: str | None = None,
    site_packages: Path | None = None,
) -> str:
    """Install the release a package holds (hash checked first), if not installed yet; its version."""
    package = inspect(deb, sha256, arch)
    if store.info(package.version) is not None:
        return package.version
    store.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store.root, prefix=".unpack-") as tmp:  # same disk: hard links
        payload = extract_payload(package, Path(tmp))
        install(store, payload, source=f"{deb.name} sha256:{package.sha256}", site_packages=site_packages)
    return package.version


def record_failure(
    store: ReleaseStore, state_dir: Path, wanted: str | None, why: str, origin: Origin
) -> None:
    busy = read_state(state_dir)
    current = store.current()
    if current is None or (busy is not None and busy.phase in (PROBATION, ROLLBACK_REQUESTED)):
        return
    try:
        to_version = check_version(wanted or current)
    except ValueError:
        to_version = current
    write_state(
        state_dir,
        UpdateState(
            FAILED,
            current,
            to_version,
            now_ms(),
            0,
            0,
            reason=why,
            origin=origin.by,
            command_id=origin.command_id,
        ),
    )


def update(
    store: ReleaseStore,
    state_dir: Path,
    policy: UpdatePolicy,
    origin: Origin,
    *,
    deb: Path | None = None,
    version: str | None = None,
    url: str | None = None,
    sha256: str | None = None,
    downloads: Path | None = None,
    site_packages: Path | None = None,
    arch: str | None = None,
) -> UpdateState:
    """Fetch (version from apt, or URL + sha256), check, install and stage one update."""
    downloads = downloads or state_dir / "updates"
    fetched: Path | None = None
    try:
        if deb is None and url is not None:
            if sha256 is None:
                raise ReleaseError("a URL needs its sha256")
            deb = fetched = download(
                url, sha256, list(policy.allowed_urls), downloads, policy.max_package_bytes
            )
        elif deb is None and version is not None:
            deb = fetched = apt_download(version, downloads, list(policy.apt_options))
        if deb is None:
            raise ReleaseError("nothing to update from: give a package, a version or a URL with its sha256")
        installed = install_package(store, deb, sha256, arch=arch, site_packages=site_packages)
        if version is not None and installed != version:
            raise ReleaseError(f"the package holds release {installed}, not {version}")
        return stage(store, state_dir, installed, policy, origin)
    except ReleaseError as exc:
        record_failure(store, state_dir, version, str(exc), origin)
        raise
    finally:
        if fetched is not None:  # the release is built (or refused): the package is not kept
            fetched.unlink(missing_ok=True)


def read_request(state_dir: Path) -> dict[str, str] | None:
    """The remote update the daemon queued (and removes it: one attempt per request)."""
    path = state_dir / REQUEST_FILE
    try:
        raw = path.read_bytes()[:MAX_REQUEST_BYTES]
        path.unlink()
        body = json.loads(raw)
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict):
        return None
    return {k: v for k, v in body.items() if isinstance(k, str) and isinstance(v, str)}
