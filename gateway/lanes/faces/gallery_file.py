"""The gallery's SQLite file: its tables, its format version, and what opening it migrates.

- The file's format version is its `PRAGMA user_version` (`GALLERY_FORMAT`): 0 may hold rows with
  plaintext details, 1 has them sealed, 2 adds the tags table. Sealing and stamping (like any
  migration) wait until this release is not on probation (`gateway.releases.formats`): a rollback
  finds the file as the older release left it. The tags table itself is made at every open: a table
  an older release does not know is one it never reads. A newer format is refused with what to do.
- Deleting keeps no recoverable bytes: `secure_delete` is on (freed pages are zeroed) and `purge`
  checkpoints the WAL (TRUNCATE) and VACUUMs. (What the flash translation layer keeps of
  overwritten blocks is out of our reach; the encryption is what protects those.)
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from gateway.lanes.faces.sealing import Sealer, column_aad
from gateway.releases.formats import MIGRATE, Format, FormatError, FormatGate

SEALED_COLUMNS = ("unit", "consent_by", "consent_how")  # besides the templates
# 2: + tags (the resident's BLE tag, sealed); 1: every resident's details sealed; 0: rows of older
# versions may hold them in plaintext (read as they are; sealed by the migration).
GALLERY_FORMAT = Format("gallery", 2, runs_on=0)
FORMAT = GALLERY_FORMAT.current

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS residents (
    id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,           -- sealed: nonce + AES-GCM (a BLOB; plaintext in older files)
    consent_by TEXT NOT NULL,     -- sealed
    consent_how TEXT NOT NULL,    -- sealed
    consent_at_ms INTEGER NOT NULL,
    doors TEXT NOT NULL,          -- JSON list of door ids; [] = every door
    windows TEXT NOT NULL,        -- JSON list of {days, from, to}; [] = any time
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY,
    resident_id TEXT NOT NULL REFERENCES residents(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL,
    quality TEXT NOT NULL,        -- JSON of the quality metrics at enrolment (no image)
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS templates_by_resident ON templates(resident_id);
CREATE TABLE IF NOT EXISTS tags (
    resident_id TEXT PRIMARY KEY REFERENCES residents(id) ON DELETE CASCADE,
    sealed BLOB NOT NULL,         -- nonce + AES-GCM of {"address", "key"} (tag_store.py)
    created_ms INTEGER NOT NULL
);
"""


class GalleryFile:
    """An open gallery database: `connect`, then `migrate` once the key is known to be right."""

    def __init__(self, path: Path, gate: FormatGate | None) -> None:
        """Open (or create) the file with its pragmas and tables; FormatError for a format this
        release cannot read. `gate`: whether this release may migrate (default: from the update
        state beside the file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.new = not path.exists()
        self.db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        if self.new:
            os.chmod(path, 0o600)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "secure_delete=ON",
            "foreign_keys=ON",
        ):
            self.db.execute(f"PRAGMA {pragma}")
        self.found = 0 if self.new else int(self.db.execute("PRAGMA user_version").fetchone()[0])
        self.gate = gate or FormatGate.at(path.parent)
        try:
            self.migrating = not self.new and self.gate.check(GALLERY_FORMAT, self.found, path) == MIGRATE
        except FormatError:
            self.db.close()
            raise
        self.db.executescript(SCHEMA)  # every table, tags too: an older release never reads it

    def migrate(self, sealer: Sealer) -> None:
        """Stamp a new file; off probation, seal plaintext rows and stamp the current format."""
        stamp = self.found  # current, or older and on probation: nothing is migrated or stamped
        if self.new:
            stamp = self.gate.writes(GALLERY_FORMAT)
        elif self.gate.may_migrate:  # whatever the stamp says: no plaintext stays at rest
            self._seal_plaintext_rows(sealer)
            stamp = GALLERY_FORMAT.current if self.migrating else self.found
        if stamp != self.found:
            self.db.execute(f"PRAGMA user_version={stamp}")

    def _seal_plaintext_rows(self, sealer: Sealer) -> None:
        """Seal unit and consent of rows an older version stored in plaintext, then purge."""
        rows = self.db.execute(
            "SELECT id, unit, consent_by, consent_how FROM residents "
            "WHERE typeof(unit) = 'text' OR typeof(consent_by) = 'text' OR typeof(consent_how) = 'text'"
        ).fetchall()
        if not rows:
            return
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for rid, *values in rows:
                sealed = [
                    sealer.seal(value.encode(), column_aad(rid, column)) if isinstance(value, str) else value
                    for column, value in zip(SEALED_COLUMNS, values, strict=True)
                ]
                self.db.execute(
                    "UPDATE residents SET unit = ?, consent_by = ?, consent_how = ? WHERE id = ?",
                    (*sealed, rid),
                )
        purge(self.db)  # the plaintext is in free pages and the WAL until then


def purge(db: sqlite3.Connection) -> None:
    """Rewrite the file without free pages and empty the WAL (old page images live there)."""
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
