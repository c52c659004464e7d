"""A release package (.deb) from a file, a URL or the operator's apt repository, checked before use.

Order of trust: the sha256 is checked on the bytes before anything reads them as a package (a file
whose hash differs is deleted, never unpacked); only then are its control fields read (it must be
`lintel` for this machine's architecture, the version a release version) and its payload extracted
with `dpkg-deb -x` (no maintainer script runs: the release is built by the caller's own, committed
code). A URL must start with one of the operator's `update.allowed_urls` prefixes and is read with a
size bound. A version comes from apt (`apt-get download lintel=V`): the operator's repository is in
apt's sources with its signing key, so apt checks Release signature -> Packages -> the .deb's hash.
Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gateway.releases.state import check_version
from gateway.releases.store import ReleaseError

PACKAGE = "lintel"
PAYLOAD = Path("usr/lib/lintel/payload")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Package:
    path: Path
    sha256: str
    version: str
    architecture: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def host_architecture() -> str:
    try:
        return subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def dpkg_version(admindir: Path | None = None) -> str | None:
    """The version of package lintel in dpkg's database (what apt/dpkg installed last), or None.
    Not the running release after `lintel update` or a rollback: README "What dpkg knows"."""
    argv = ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Version}", PACKAGE]
    if admindir is not None:
        argv.insert(1, f"--admindir={admindir}")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    status, _, version = done.stdout.partition("\t")
    installed = done.returncode == 0 and status.startswith("i")
    return (version.strip() or None) if installed else None


def check_sha256(path: Path, expected: str | None) -> str:
    """The file's sha256; ReleaseError (and the file left alone, unopened as a package) on mismatch."""
    actual = file_sha256(path)
    if expected is not None:
        if not SHA256.match(expected):
            raise ReleaseError(f"sha256 {expected!r} is not 64 lowercase hex digits")
        if actual != expected:
            raise ReleaseError(f"{path.name} has sha256 {actual}, expected {expected}: refused, not unpacked")
    return actual


def inspect(path: Path, expected_sha256: str | None, arch: str | None = None) -> Package:
    """A checked package: hash first, then its control fields (dpkg-deb -f)."""
    digest = check_sha256(path, expected_sha256)
    done = subprocess.run(
        ["dpkg-deb", "-f", str(path), "Package", "Version", "Architecture"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise ReleaseError(f"{path.name} is not a Debian package: {done.stderr.strip()[:200]}")
    fields = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    want_arch = arch or host_architecture()
    if fields.get("Package") != PACKAGE:
        raise ReleaseError(f"{path.name} is package {fields.get('Package')!r}, not {PACKAGE}")
    if fields.get("Architecture") != want_arch:
        raise ReleaseError(f"{path.name} is for {fields.get('Architecture')}, this machine is {want_arch}")
    try:
        version = check_version(fields.get("Version", ""))
    except ValueError as exc:
        raise ReleaseError(f"{path.name}: {exc}") from None
    return Package(path, digest, version, want_arch)


def extract_payload(package: Package, into: Path) -> Path:
    """Unpack a checked package's files under `into`; returns its payload folder."""
    done = subprocess.run(["dpkg-deb", "-x", str(package.path), str(into)], capture_output=True, text=True)
    if done.returncode != 0:
        raise ReleaseError(f"cannot unpack {package.path.name}: {done.stderr.strip()[:200]}")
    payload = into / PAYLOAD
    if not (payload / "VERSION").is_file():
        raise ReleaseError(f"{package.path.name} holds no Lintel payload ({PAYLOAD})")
    return payload


def download(url: str, sha256: str, allowed: list[str], dest_dir: Path, max_bytes: int) -> Path:
    """Fetch `url` (under an allowed prefix) into `dest_dir`, at most `max_bytes`, hash checked."""
    if not SHA256.match(sha256):
        raise ReleaseError(f"sha256 {sha256!r} is not 64 lowercase hex digits")
    if not any(url.startswith(prefix) for prefix in allowed):
        raise ReleaseError(
            f"{url} is not under update.allowed_urls ({', '.join(allowed) or 'none configured'}): not fetched"
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / f"{sha256}.deb"
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, suffix=".part")
    tmp = Path(tmp_name)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ReleaseError(f"{url} is larger than update.max_package_mb: not fetched further")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ReleaseError(
                f"{url} has sha256 {digest.hexdigest()}, expected {sha256}: deleted, not unpacked"
            )
        os.replace(tmp, final)
    except OSError as exc:
        raise ReleaseError(f"cannot fetch {url}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return final


def apt_download(version: str, dest_dir: Path, apt_options: list[str]) -> Path:
    """`apt-get download lintel=VERSION` into `dest_dir` (apt checks the repository's signature and
    the package's hash on the way); `apt_options` are extra `-o` settings (tests: a private root)."""
    check_version(version)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        for step in (["update"], ["download", f"{PACKAGE}={version}"]):
            done = subprocess.run(
                ["apt-get", "-q", *apt_options, *step], cwd=tmp, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise ReleaseError(f"apt-get {' '.join(step)} failed: {done.stderr.strip()[-600:]}")
        debs = list(Path(tmp).glob(f"{PACKAGE}_*.deb"))
        if len(debs) != 1:
            raise ReleaseError(f"apt-get download {PACKAGE}={version} gave {len(debs)} packages")
        final = dest_dir / debs[0].name
        shutil.move(debs[0], final)
    return final
