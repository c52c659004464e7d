"""The outbox database: opening (with integrity check and quarantine), schema, and queries.

One table per priority class (`m0` telemetry … `m3` alarm) keyed by `seq`: the rowid order *is*
FIFO order, so no secondary index has to be written for every message (fewer bytes per reading on
an SD card). `meta` holds the seq high-water mark, drop counters and the clean-shutdown marker,
all updated in the same transactions as the messages they describe.

Seq never goes backwards, even when a corrupt file is replaced: a sidecar file `<db>.seq` holds a
*reservation* (a seq above every seq handed out); the writer renews it before handing out seqs
past it, so a fresh database can safely start at the reservation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.core import Klass, LintelError
from gateway.core.files import replace_durably

log = logging.getLogger("lintel.outbox")

SCHEMA_VERSION = 1
SEQ_RESERVE_BLOCK = 100_000
TABLES = {k: f"m{int(k)}" for k in Klass}

_DDL = [
    *(
        f"CREATE TABLE IF NOT EXISTS {t} (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
        "payload BLOB NOT NULL, created_ms INTEGER NOT NULL, records INTEGER NOT NULL)"
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


@dataclass(slots=True)
class OpenReport:
    """What happened while opening: read by the runtime for status and the birth message."""

    created: bool = False
    quarantined_to: str | None = None
    quarantine_reason: str | None = None
    was_clean_shutdown: bool = True


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    if not readonly:
        conn.execute("PRAGMA journal_mode=WAL")
        # Commits are fsynced: 'accepted' means on the disk, also across a power cut.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA journal_size_limit=8388608")
    return conn


CORRUPTION = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


class OutboxUnavailable(LintelError):
    """The outbox cannot be opened for a reason other than corruption (full disk, permissions, I/O):
    the file is left alone; the service fails to start and systemd retries later."""


def _check(path: Path) -> str | None:
    """None if the database is sound, else why not. Only real corruption counts: a full disk or a
    permission problem raises OutboxUnavailable, because moving a healthy file aside would lose it."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "") in CORRUPTION:
            return str(exc)
        raise OutboxUnavailable(f"cannot open the outbox {path}: {exc}") from exc
    if rows != [("ok",)]:
        return "; ".join(str(r[0]) for r in rows[:3])
    return None


def quarantine(path: Path, reason: str) -> Path:
    """Move a database and its WAL/SHM aside so a fresh one can take its place."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            os.replace(src, Path(str(target) + suffix))
    log.error("outbox database %s is corrupt (%s): moved to %s, starting a new one", path, reason, target)
    return target


class OutboxStore:
    """Owns the database file. The writer thread uses `conn`; readers open their own connections."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seq_file = path.with_name(path.name + ".seq")
        self.report = OpenReport()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            reason = _check(path)
            if reason is not None:
                self.report.quarantined_to = str(quarantine(path, reason))
                self.report.quarantine_reason = reason
        self.report.created = not path.exists()
        try:
            self.conn = connect(path)
        except sqlite3.OperationalError as exc:
            raise OutboxUnavailable(f"cannot open the outbox {path}: {exc}") from exc
        (version,) = self.conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            self.conn.close()
            raise OutboxUnavailable(
                f"the outbox {path} was written by a newer Lintel (schema {version}, this one knows "
                f"{SCHEMA_VERSION}): upgrade Lintel again, or move the file aside to start empty"
            )
        for ddl in _DDL:
            self.conn.execute(ddl)
        self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        meta = self.meta()
        self.report.was_clean_shutdown = self.report.created or meta.get("clean_shutdown", 0) == 1
        self.set_meta({"clean_shutdown": 0})

    # -- meta ------------------------------------------------------------------------------
    def meta(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, values: dict[str, int]) -> None:
        self.conn.executemany(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            list(values.items()),
        )

    # -- seq ---------------------------------------------------------------------------------
    def initial_seq(self) -> int:
        """The last seq handed out, never below anything this gateway has published.

        A database that had to be created (first start, lost or quarantined file) starts at the
        reservation, which lies above every seq the previous database handed out."""
        if self.report.created:
            return self.read_reservation()
        last = self.meta().get("last_seq", 0)
        for table in TABLES.values():
            (top,) = self.conn.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {table}").fetchone()
            last = max(last, top)
        return last

    def read_reservation(self) -> int:
        try:
            return int(self.seq_file.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def reserve(self, upto: int) -> None:
        """Durably promise that no seq above `upto` has been used (atomic replace + fsync)."""
        replace_durably(self.seq_file, f"{upto}\n".encode())

    # -- sizes -----------------------------------------------------------------------------
    def class_totals(self) -> dict[Klass, tuple[int, int]]:
        """(rows, bytes) per class; bytes count payload plus topic."""
        totals = {}
        for klass, table in TABLES.items():
            rows, size = self.conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload) + LENGTH(topic)), 0) FROM {table}"
            ).fetchone()
            totals[klass] = (rows, size)
        return totals

    def close(self, *, clean: bool) -> None:
        if clean:
            try:
                self.set_meta({"clean_shutdown": 1})
            except sqlite3.OperationalError as exc:  # a full disk: the next start says "crash"
                log.warning("outbox: cannot record the clean shutdown: %s", exc)
            # Fold the WAL into the database so the next start reads one file; optional.
            with contextlib.suppress(sqlite3.OperationalError):
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()


class OutboxReader:
    """A read-only view for the uplink and the CLI: FIFO pages of one class."""

    def __init__(self, path: Path) -> None:
        self.conn = connect(path)
        self.conn.execute("PRAGMA query_only=1")

    def page(self, klass: Klass, after_seq: int, upto_seq: int | None, limit: int) -> list[PendingMessage]:
        table = TABLES[klass]
        if upto_seq is None:
            rows = self.conn.execute(
                f"SELECT seq, topic, payload FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        else:
            rows = self.conn.execute(
                f"SELECT seq, topic, payload FROM {table} WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (after_seq, upto_seq, limit),
            ).fetchall()
        return [PendingMessage(klass, seq, topic, payload) for seq, topic, payload in rows]

    def close(self) -> None:
        self.conn.close()
