"""Evidence pictures: annotated JPEGs kept on the gateway with retention, fetched by id.

Ids are `<lane-or-camera>-<utc yyyymmddThhmmss>-<6 hex>`; files live in `<dir>/<id>.jpg`.
Retention: older than `retention_days`, or oldest first beyond `max_bytes`, deleted at each save
(and by `prune()`). An id from outside (a command) is checked against the pattern before it
touches the file system, so it cannot name a path.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from pathlib import Path

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}-\d{8}T\d{6}-[0-9a-f]{6}$")


class EvidenceStore:
    def __init__(self, folder: Path, retention_days: float, max_bytes: int) -> None:
        self.folder = folder
        self.retention_s = retention_days * 86400
        self.max_bytes = max_bytes
        self.saved = 0

    def save(self, prefix: str, jpeg: bytes, now_ms: int) -> str:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o750)
        stamp = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).strftime("%Y%m%dT%H%M%S")
        evidence_id = f"{prefix}-{stamp}-{secrets.token_hex(3)}"
        path = self.folder / f"{evidence_id}.jpg"
        partial = path.with_suffix(".partial")
        with partial.open("wb") as f:
            f.write(jpeg)
            f.flush()
            os.fsync(f.fileno())
        partial.replace(path)
        self.saved += 1
        self.prune(now_ms)
        return evidence_id

    def get(self, evidence_id: str) -> bytes | None:
        if not ID_PATTERN.match(evidence_id):
            return None
        path = self.folder / f"{evidence_id}.jpg"
        return path.read_bytes() if path.is_file() else None

    def prune(self, now_ms: int) -> None:
        if not self.folder.is_dir():
            return
        stats = ((p.stat(), p) for p in self.folder.glob("*.jpg"))
        files = sorted((st.st_mtime, st.st_size, p) for st, p in stats)
        total = sum(size for _, size, _ in files)
        horizon = now_ms / 1000 - self.retention_s
        for mtime, size, path in files:
            if mtime >= horizon and total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
