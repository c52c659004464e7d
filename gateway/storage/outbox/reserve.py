"""The outbox's disk reserve: `<db>.reserve`, a 1 MiB file kept while there is room and given back
when the disk is full, so SQLite finds room for its `-shm` file and a few commits (at start, or when
a commit hits a full disk)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger("lintel.outbox")

RESERVE_BYTES = 1024 * 1024


class DiskReserve:
    def __init__(self, path: Path) -> None:
        self.path = path

    def keep(self) -> bool:
        """Create the file when there is room for it (4x its size free) and it is missing. True if
        it exists."""
        if self.path.exists():
            return True
        try:
            st = os.statvfs(self.path.parent)
            if st.f_bavail * st.f_frsize < 4 * RESERVE_BYTES:
                return False
            with open(self.path, "wb") as fh:
                fh.write(b"\0" * RESERVE_BYTES)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                self.path.unlink()
            return False
        return True

    def release(self) -> bool:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning("outbox: disk full: released the %d KiB reserve", RESERVE_BYTES // 1024)
        return True
