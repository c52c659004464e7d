"""Crash-safe file and link replacement for the release store (standard library only).

`gateway.core.files.replace_durably` does the same for files, but `gateway.core` imports pydantic,
which Debian's bare python3 running a maintainer script does not have.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """After a crash or power cut `path` holds the old bytes or the new ones, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)  # O_CREAT's mode is cut by the umask
    os.replace(tmp, path)
    fsync_dir(path.parent)


def point_link(link: Path, target: str) -> None:
    """Make the symlink `link` point at `target` atomically: rename(2) of a new link over the old
    one, so any reader (systemd starting the unit, a power cut) sees the old target or the new."""
    tmp = link.with_name(f".{link.name}.new")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)
