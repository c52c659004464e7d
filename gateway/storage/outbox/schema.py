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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.core import Klass
from gateway.releases.formats import MIGRATE, Format, FormatGate
from gateway.storage.outbox.checks import row_crc

# 2: a crc column in every message table (checks.row_crc); 3: native_seq, the native numbering
# apart from the rows' (in schema 2 every row took a native seq, bridge rows too)
SCHEMA_VERSION = 3
# The oldest version this code runs on without migrating it (while on probation: README "Updates and
# rollback"), and the version `_DDL` creates (newer steps run on top of it for a new file). Keep
# DDL_VERSION <= runs_on: a new file made on probation must be one the previous release reads.
FORMAT = Format("outbox", SCHEMA_VERSION, runs_on=3)
DDL_VERSION = 3
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


def _to_2(conn: sqlite3.Connection) -> None:
    """1 -> 2: add the crc column and fill it for the rows already there (they were written before
    checks existed; this is the last moment they can be sealed)."""
    conn.create_function("lintel_crc", 5, row_crc, deterministic=True)
    for klass, table in TABLES.items():
        conn.execute(f"ALTER TABLE {table} ADD COLUMN crc INTEGER")
        conn.execute(
            f"UPDATE {table} SET crc = lintel_crc(?, seq, records, CAST(topic AS BLOB), payload)",
            (int(klass),),
        )


def _to_3(conn: sqlite3.Connection) -> None:
    """2 -> 3: add `native_seq`; a native row's is its `seq` (one numbering then: native rows have
    records > 0, bridge rows 0), and both numberings continue from the old `last_seq`. The holes
    the old bridge rows left in the native numbering stay: their payloads are written."""
    for table in TABLES.values():
        conn.execute(f"ALTER TABLE {table} ADD COLUMN native_seq INTEGER")
        conn.execute(f"UPDATE {table} SET native_seq = seq WHERE records > 0")
    conn.execute(
        "INSERT OR IGNORE INTO meta(key, value) SELECT 'last_row', value FROM meta WHERE key = 'last_seq'"
    )


# Each step migrates from the version before it. A new step must come with a release that still
# runs on the version before it (FORMAT.runs_on): it migrates only after its probation.
STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {2: _to_2, 3: _to_3}


def file_version(conn: sqlite3.Connection) -> int:
    """The file's format version; 0 for a file without tables yet (created by this open)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def migrate(conn: sqlite3.Connection, gate: FormatGate | None = None, where: object = "the outbox") -> None:
    """Create the tables of a new file, or migrate an older one forward when `gate` allows it
    (never while this release is on probation: `gateway.releases.formats`). A new file made on
    probation is made in the format the previous release reads (`gate.writes`)."""
    gate = gate or FormatGate.free()
    version = file_version(conn)
    if version == 0:
        target, steps = gate.writes(FORMAT), range(DDL_VERSION + 1, gate.writes(FORMAT) + 1)
    elif gate.check(FORMAT, version, where) == MIGRATE:
        target, steps = FORMAT.current, range(version + 1, FORMAT.current + 1)
    else:
        return  # current, or an older one this release runs on (nothing to write: a full disk at
        # start must not stop a sound file from opening)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for ddl in _DDL:
            conn.execute(ddl)
        for step in steps:
            STEPS[step](conn)
        conn.execute(f"PRAGMA user_version={target}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
