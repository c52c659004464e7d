"""`lintel update` and `lintel releases`: install a release beside the running one, switch on probation.

    lintel update --deb FILE [--sha256 HEX]     a package file (hash checked first when given)
    lintel update --version V                   from the apt repository in this machine's apt sources
    lintel update --url URL --sha256 HEX        a package under update.allowed_urls
    lintel update --request                     the remote request the daemon queued (lintel-update.service)
    lintel releases [--json]                    installed releases, current, committed, the update state

Run as root. After staging, the service is restarted (systemctl) so the new release's probation
begins; `--no-restart` leaves that to you. The outcome is reported upstream by whichever release
runs afterwards (`updated`, `update_rolled_back`, `update_failed`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from gateway.cli.args import config_arg, json_arg
from gateway.releases.activate import policy_of
from gateway.releases.guard import state_dir_of
from gateway.releases.package import dpkg_version
from gateway.releases.state import read_state
from gateway.releases.store import DEFAULT_ROOT, ReleaseError, ReleaseStore
from gateway.releases.updater import Origin, read_request, update

SYSTEMD = Path("/run/systemd/system")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("update", help="install another release beside this one and switch to it on probation")
    config_arg(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--deb", type=Path, help="a lintel_<version>_<arch>.deb file")
    what.add_argument("--version", help="a version from the apt repository in this machine's apt sources")
    what.add_argument("--url", help="a package URL under update.allowed_urls (needs --sha256)")
    what.add_argument("--request", action="store_true", help="apply the remote request the daemon queued")
    p.add_argument("--sha256", help="the package's sha256 (required with --url)")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="release store (default /opt/lintel)")
    p.add_argument("--no-restart", action="store_true", help="do not restart the service after staging")
    p.add_argument("--apt-option", action="append", default=[], help="extra apt-get -o setting (repeatable)")
    p.add_argument("--site-packages", type=Path, help=argparse.SUPPRESS)  # tests: share an environment
    json_arg(p)
    p = sub.add_parser("releases", help="installed releases, the current and committed one, the update state")
    config_arg(p)
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--admindir", type=Path, help=argparse.SUPPRESS)  # tests: another dpkg database
    json_arg(p)


def _restart() -> str:
    if not SYSTEMD.is_dir():
        return "systemd is not running: start the service to begin probation"
    done = subprocess.run(["systemctl", "restart", "lintel.service"], capture_output=True, text=True)
    return "service restarted" if done.returncode == 0 else f"systemctl restart failed: {done.stderr.strip()}"


def cmd_update(args: argparse.Namespace) -> int:
    config = Path(args.config)
    store, state_dir = ReleaseStore(args.root), state_dir_of(config)
    policy = policy_of(config)
    if args.apt_option:
        policy = replace(policy, apt_options=tuple(f"-o{o}" for o in args.apt_option))
    origin = Origin()
    what: dict[str, Any] = {"deb": args.deb, "version": args.version, "url": args.url, "sha256": args.sha256}
    if args.request:
        request = read_request(state_dir)
        if request is None:
            print("lintel update: no update request waiting", file=sys.stderr)
            return 0
        origin = Origin(request.get("by", "remote"), request.get("command_id") or None)
        what = {"deb": None, **{k: request.get(k) for k in ("version", "url", "sha256")}}
    try:
        state = update(store, state_dir, policy, origin, site_packages=args.site_packages, **what)
    except ReleaseError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        else:
            print(f"lintel update: {exc}", file=sys.stderr)
        return 1
    said = "" if args.no_restart else _restart()
    if args.json:
        print(json.dumps({"ok": True, "state": asdict(state), "restart": said}))
    else:
        print(
            f"release {state.to_version} installed beside {state.from_version}; switched on probation "
            f"({state.probation_s:g} s, {state.max_boots} starts at most)" + (f"; {said}" if said else "")
        )
    return 0


def cmd_releases(args: argparse.Namespace) -> int:
    store = ReleaseStore(args.root)
    state = read_state(state_dir_of(Path(args.config)))
    current, committed = store.current(), store.committed()
    infos = [i for v in store.versions() if (i := store.info(v)) is not None]
    package = dpkg_version(args.admindir)
    if args.json:
        body = {
            "root": str(store.root),
            "releases": [{**asdict(i), "path": str(i.path)} for i in infos],
            "current": current,
            "committed": committed,
            "update": asdict(state) if state else None,
            "package_version": package,
        }
        print(json.dumps(body, indent=1))
        return 0
    for info in infos:
        marks = [m for m, v in (("current", current), ("committed", committed)) if v == info.version]
        print(f"{info.version:<16} {', '.join(marks):<20} {info.source}")
    if state:
        why = f" ({state.reason})" if state.reason else ""
        print(f"update {state.from_version} -> {state.to_version}: {state.phase}{why}")
    if package is not None and package != current:
        print(
            f"dpkg knows package lintel {package} (what apt installed last); the release running is "
            f"{current}: `lintel update` and rollbacks switch releases without dpkg "
            '(README "What dpkg knows")'
        )
    return 0
