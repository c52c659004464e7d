"""One daemon per state folder: an exclusive lock on `<state_dir>/lintel.lock`, held for the
daemon's life.

Two daemons on one folder would both append to the outbox (seq clashes, `UNIQUE constraint
failed`), replace each other's status file and control socket, and both drive the same door
relays. `lintel run` and `lintel demo` take the lock before they open anything in the folder;
the second one is refused with the holder's pid. The tools that only read (`status`, `doctor`,
`outbox` reports) never take it.

`flock` belongs to the open file: the kernel releases it when the process ends in any way
(kill -9 included), so a stale lock file never blocks a start. The file descriptor is not inherited
(Python's default), so a re-exec for a deployment releases it and the new image takes it again.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "lintel.lock"


class StateFolderBusy(Exception):
    """Another process holds the state folder's lock."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        self.folder = folder
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "another process (pid not yet written)"
        super().__init__(
            f"another lintel daemon ({holder}) is using the state folder {folder}; stop it first "
            f"(systemctl stop lintel, or end that process), or give this one its own gateway.state_dir"
        )


class StateLock:
    """The held lock; `release()` (or the process's end) frees the folder."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor of the open file drops the flock
            self._fd = None


def lock_state_folder(folder: Path) -> StateLock:
    """Take the folder's lock (creating the folder, owner-only, if it is missing) or raise
    StateFolderBusy naming the holder. OSError: the folder cannot be used (a config matter)."""
    folder = folder.resolve()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    # no O_TRUNC: the holder's pid stays readable until this process owns the lock
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder(fd)
        os.close(fd)
        raise StateFolderBusy(folder, pid) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        os.close(fd)
        raise
    return StateLock(folder, fd)


def _holder(fd: int) -> int | None:
    """The pid the holder wrote (None while it has not yet, or if the file is not ours)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
