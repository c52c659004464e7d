"""Build one release folder from a payload: the code, the models, and a venv made offline.

A payload is what `scripts/build-deb.sh` puts in the package under /usr/lib/lintel/payload:

    VERSION            the release's version (one line)
    src/               gateway/, drivers/, models/ (manifests + the built ONNX files), .cache/media/
    wheels/            every dependency as a wheel for this architecture and CPython 3.11
    requirements.txt   each wheel pinned with its sha256 (pip --require-hashes: a changed wheel is refused)

The venv is made with the system's python3 (`python3 -m venv`) and filled by pip from `wheels/` only
(`--no-index`): nothing is fetched from a network. The release's code is not pip-installed: a .pth
file puts `src/` on the venv's path, so `models/` stays beside `gateway/` as in a checkout.
`--site-packages DIR` (tests, benchmarks) makes a venv without pip whose .pth also names DIR,
an existing environment holding the same dependencies, instead of installing the wheels.

Used by the package's postinst (`gateway/cli/release_tools.py activate`, under Debian's python3:
standard library only) and by `lintel update`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from gateway.releases.state import check_version
from gateway.releases.store import ReleaseError, ReleaseInfo, ReleaseStore

LAUNCHER = """#!/bin/sh
# Lintel {version}: this release's own interpreter and code, whatever PYTHONPATH says (-I).
exec {python} -I -m {module} "$@"
"""


def payload_version(payload: Path) -> str:
    try:
        return check_version((payload / "VERSION").read_text().strip())
    except OSError as exc:
        raise ReleaseError(f"{payload} is not a Lintel payload (no VERSION file: {exc.strerror})") from None


def _link_or_copy(src: str, dst: str) -> None:
    """Hard link when the payload is on the same file system (the models are 100+ MB), else copy.
    dpkg replaces its files by rename, so a link keeps the old bytes when the package is upgraded."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ReleaseError(f"{what} failed (exit {done.returncode}): " + " | ".join(tail))


def make_venv(venv: Path, payload: Path, site_packages: Path | None, python: str) -> Path:
    """The venv of a release; returns its site-packages folder."""
    if site_packages is None:
        _run([python, "-m", "venv", str(venv)], "python3 -m venv (is python3-venv installed?)")
        _run(
            [
                str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                "--disable-pip-version-check",
                "--no-index", "--find-links", str(payload / "wheels"), "--require-hashes",
                "--only-binary=:all:", "-r", str(payload / "requirements.txt"),
            ],
            "pip install from the package's wheels",
        )  # fmt: skip
    else:
        _run([python, "-m", "venv", "--without-pip", str(venv)], "python3 -m venv")
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def install(
    store: ReleaseStore,
    payload: Path,
    *,
    source: str,
    site_packages: Path | None = None,
    python: str = sys.executable,
) -> ReleaseInfo:
    """Build `payload` as a new release folder beside the others; never touches an installed one."""
    version = payload_version(payload)
    partial = store.begin(version)
    final = store.path(version)
    shutil.copytree(payload / "src", partial / "src", copy_function=_link_or_copy, symlinks=False)
    site = make_venv(partial / "venv", payload, site_packages, python)
    lines = [str(final / "src"), *([str(site_packages)] if site_packages else [])]
    (site / "lintel-release.pth").write_text("\n".join(lines) + "\n")
    bin_dir = partial / "bin"
    bin_dir.mkdir()
    for name, module in (("lintel", "gateway.cli.main"), ("lintel-guard", "gateway.cli.release_tools guard")):
        launcher = bin_dir / name
        launcher.write_text(LAUNCHER.format(version=version, python=final / "venv/bin/python", module=module))
        launcher.chmod(0o755)
    return store.finish(partial, version, source)
