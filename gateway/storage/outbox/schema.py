"""The outbox's tables, rows and connections (shared by the store, the reader and the salvage).

One table per priority class (`m0` telemetry … `m3` alarm) keyed by `seq`, the row's place in
commit order over native and bridge rows alike (the outbox's own numbering: FIFO, acks, eviction).
A native row also holds `native_seq`, the `seq` its payload carries to receivers, taken from the
native numbering only; a bridge row's is NULL (bridges number their messages themselves). `meta`
holds `last_row` and `last_seq` (the high-water marks of the two numberings), drop counters, rows
per class and the clean-shutdown marker.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from gateway.core import Klass
from gateway.storage.outbox.checks import row_crc

# 2: a crc column in every message table (checks.row_crc); 3: native_seq, the native numbering
# apart from the rows' (in schema 2 every row took a native seq, bridge rows too)
SCHEMA_VERSION = 3
TABLES = {k: f"m{int(k)}" for k in Klass}

_DDL = [
    *(
        f"CREATE TABLE IF NOT EXISTS {t} (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
        "payload BLOB NOT NULL, created_ms INTEGER NOT NULL, records INTEGER NOT NULL, crc INTEGER, "
        "native_seq INTEGER)"
        for t in TABLES.values()
    ),
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
]


@dataclass(frozen=True, slots=True)
class PendingMessage:
    klass: Klass
    seq: int
    topic: str
    payload: bytes

    @property
    def size(self) -> int:
        return len(self.payload) + len(self.topic)


def connect(path: Path, *, readonly: bool = False, exclusive: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    if exclusive:
        # Before the first access: SQLite then keeps the WAL index in heap memory, no -shm file.
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    if not readonly:
        conn.execute("PRAGMA journal_mode=WAL")
        # Commits are fsynced: 'accepted' means on the disk, also across a power cut.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA journal_size_limit=8388608")
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Schema 1 -> 2: add the crc column and fill it for the rows already there (they were
    written before checks existed; this is the last moment they can be sealed). 2 -> 3: add
    `native_seq`; a native row's is its `seq` (one numbering then: native rows have records > 0,
    bridge rows 0), and both numberings continue from the old `last_seq`. The holes the old bridge
    rows left in the native numbering stay: their payloads are written."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version == SCHEMA_VERSION:
        return  # nothing to write (a full disk at start must not stop a sound file from opening)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for ddl in _DDL:
            conn.execute(ddl)
        if version == 1:
            for klass, table in TABLES.items():
                conn.execute(f"ALTER TABLE {table} ADD COLUMN crc INTEGER")
                conn.create_function("lintel_crc", 5, row_crc, deterministic=True)
                conn.execute(
                    f"UPDATE {table} SET crc = lintel_crc(?, seq, records, CAST(topic AS BLOB), payload)",
                    (int(klass),),
                )
        if version in (1, 2):
            for table in TABLES.values():
                conn.execute(f"ALTER TABLE {table} ADD COLUMN native_seq INTEGER")
                conn.execute(f"UPDATE {table} SET native_seq = seq WHERE records > 0")
            conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) "
                "SELECT 'last_row', value FROM meta WHERE key = 'last_seq'"
            )
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
