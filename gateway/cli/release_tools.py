"""The release tools that run outside a release's venv, under Debian's bare python3 (standard
library only, like the `gateway.releases` modules they call):

    python3 -I <payload>/src/gateway/cli/release_tools.py activate --payload DIR [--config FILE]
        the package's postinst: build the payload as a release, make it current (first install) or
        switch to it on probation (upgrade)
    <release>/bin/lintel-guard [-c FILE] [--root DIR] [--state-dir DIR]
        the unit's ExecStartPre (python -m gateway.cli.release_tools guard): the boot guard
    python3 -I .../release_tools.py install PAYLOAD [--root DIR] [--site-packages DIR] [--if-missing]
        build a release folder only (no switch)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file by the maintainer script: the payload's src/ is the root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.releases.activate import activate
from gateway.releases.guard import DEFAULT_CONFIG, decide, state_dir_of
from gateway.releases.install import install, payload_version
from gateway.releases.store import DEFAULT_ROOT, ReleaseError, ReleaseStore


def cmd_guard(args: argparse.Namespace) -> int:
    state_dir = args.state_dir or state_dir_of(args.config)
    started = time.monotonic()
    verdict = decide(ReleaseStore(args.root), state_dir)
    print(f"lintel-guard: {verdict.did} ({(time.monotonic() - started) * 1000:.0f} ms)", flush=True)
    return 0 if verdict.run is not None else 1


def cmd_activate(args: argparse.Namespace) -> int:
    said = activate(ReleaseStore(args.root), args.payload, args.config, args.source, args.site_packages)
    print(f"lintel: {said}")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    store = ReleaseStore(args.root)
    version = payload_version(args.payload)
    if not (args.if_missing and store.info(version) is not None):
        install(
            store, args.payload, source=args.source or str(args.payload), site_packages=args.site_packages
        )
    print(store.path(version))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lintel release tools", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="tool", required=True)
    p = sub.add_parser("guard", help="the boot guard (ExecStartPre)")
    p.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--state-dir", type=Path, default=None, help="default: the config's gateway.state_dir")
    p.set_defaults(run=cmd_guard)
    p = sub.add_parser("activate", help="install the package's release and switch to it (postinst)")
    p.add_argument("--payload", type=Path, required=True)
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--source", default="the lintel package")
    p.add_argument("--site-packages", type=Path, default=None)
    p.set_defaults(run=cmd_activate)
    p = sub.add_parser("install", help="build a release folder from a payload")
    p.add_argument("payload", type=Path)
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--source", default=None)
    p.add_argument("--site-packages", type=Path, default=None)
    p.add_argument("--if-missing", action="store_true")
    p.set_defaults(run=cmd_install)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except ReleaseError as exc:
        print(f"lintel: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
