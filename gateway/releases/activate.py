"""What the package's postinst does with the release it carries (run by Debian's python3, as root):

    python3 -I /usr/lib/lintel/payload/src/gateway/cli/release_tools.py activate --payload DIR --config FILE

build it as a release folder if it is not installed yet (`install.py`); then, on a machine without a
release, make it current and committed at once (a first install has nothing to fall back to); on a
machine running another release, stage it on probation like `lintel update` (`updater.stage`,
with the config's `[update]` settings), so `apt upgrade` gets the same automatic rollback. A staging
refusal (another update still on probation) is printed, not fatal: the package stays installed and
`lintel update --version V` can switch later. Standard library only.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from gateway.releases.guard import state_dir_of
from gateway.releases.install import install, payload_version
from gateway.releases.store import ReleaseError, ReleaseStore
from gateway.releases.updater import Origin, UpdatePolicy, stage


def policy_of(config: Path) -> UpdatePolicy:
    """`[update]` of the config (defaults for what it leaves out or cannot be read)."""
    try:
        section = tomllib.loads(config.read_text()).get("update", {})
    except (OSError, ValueError, RecursionError):
        section = {}
    default = UpdatePolicy()
    try:
        return UpdatePolicy(
            probation_s=float(section.get("probation_s", default.probation_s)),
            max_boots=int(section.get("max_boots", default.max_boots)),
            keep_releases=int(section.get("keep_releases", default.keep_releases)),
            allowed_urls=tuple(str(u) for u in section.get("allowed_urls", ())),
            max_package_bytes=int(float(section.get("max_package_mb", 400)) * 1024 * 1024),
        )
    except (TypeError, ValueError):
        return default


def activate(
    store: ReleaseStore, payload: Path, config: Path, source: str, site_packages: Path | None
) -> str:
    version = payload_version(payload)
    if store.info(version) is None:
        install(store, payload, source=source, site_packages=site_packages)
    current = store.current()
    if current is None:
        store.switch(version)
        store.commit(version)
        return f"release {version} installed and current"
    if current == version:
        return f"release {version} is already current"
    try:
        stage(store, state_dir_of(config), version, policy_of(config), Origin("package"))
    except ReleaseError as exc:
        return f"release {version} installed beside {current}, not switched: {exc}"
    return f"release {version} installed; switched from {current} on probation (restart to begin it)"
