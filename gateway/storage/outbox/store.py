"""The outbox database file: opening it whatever state it is in, the seq reservation, the reserve.

Opening: `PRAGMA quick_check` and a check of the WAL a crash left (`recover.wal_damage`); a damaged
file is salvaged (`recover`, `salvage`), moved aside and replaced by a fresh one holding the
salvaged rows with their seqs. A full disk is not corruption: the store releases its reserve file
and, if SQLite still cannot create its `-shm` file, opens in exclusive locking mode (`degraded`).

One table per priority class (`m0` telemetry … `m3` alarm) keyed by `seq`: the rowid order *is*
FIFO order, so no secondary index has to be written for every message (fewer bytes per reading on
an SD card). `meta` holds the seq high-water mark, drop counters, rows per class and the
clean-shutdown marker, all updated in the same transactions as the messages they describe.

Seq never goes backwards, even when a corrupt file is replaced: a sidecar file `<db>.seq` holds a
*reservation* (a row seq above every row seq handed out, and so above every native seq, which
advances only with a row); the writer renews it before handing out seqs past it, so a fresh
database can safely start both numberings at the reservation.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core import Klass, LintelError
from gateway.core.files import replace_durably
from gateway.releases.formats import FormatError, FormatGate
from gateway.storage.outbox.checks import CorruptRows, register, unregister
from gateway.storage.outbox.reader import OutboxReader
from gateway.storage.outbox.recover import read_wal, reinsert, salvage_file, wal_damage
from gateway.storage.outbox.reserve import DiskReserve
from gateway.storage.outbox.salvage import SalvageReport
from gateway.storage.outbox.schema import FORMAT, TABLES, PendingMessage, connect, migrate

log = logging.getLogger("lintel.outbox")

SEQ_RESERVE_BLOCK = 100_000


@dataclass(slots=True)
class OpenReport:
    """What happened while opening: read by the runtime for status and the birth message."""

    created: bool = False
    quarantined_to: str | None = None
    quarantine_reason: str | None = None
    was_clean_shutdown: bool = True
    salvage: SalvageReport | None = None
    # Set when the disk was full at start: the outbox is open without SQLite's shared memory
    # (locking_mode=EXCLUSIVE) and readers share the writer's connection until the next start.
    degraded: str | None = None

    def event_body(self) -> dict[str, Any]:
        """The body of the `outbox_replaced` event (only meaningful when quarantined_to is set)."""
        body: dict[str, Any] = {"moved_to": self.quarantined_to, "reason": self.quarantine_reason}
        if self.salvage is not None:
            body.update(self.salvage.as_event())
        return body


__all__ = ["TABLES", "OutboxReader", "OutboxStore", "OutboxUnavailable", "PendingMessage", "connect"]

CORRUPTION = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


class OutboxUnavailable(LintelError):
    """The outbox cannot be opened for a reason other than corruption or a full disk (permissions,
    I/O): the file is left alone; the service fails to start and systemd retries later."""


def _check(path: Path, exclusive: bool) -> str | None:
    """None if the database is sound, else why not. Only real corruption counts: a full disk or a
    permission problem raises OutboxUnavailable, because moving a healthy file aside would lose it."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
        try:
            if exclusive:
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
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
    log.error("outbox database %s is corrupt (%s): moved to %s, salvaging its rows", path, reason, target)
    return target


def _is_full(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "full" in text or "disk i/o error" in text or getattr(exc, "errno", None) == errno.ENOSPC


class OutboxStore:
    """Owns the database file. The writer thread uses `conn`; readers open their own connections
    (or, in the degraded exclusive mode, share `conn` under `lock`)."""

    def __init__(self, path: Path, gate: FormatGate | None = None) -> None:
        """`gate`: whether this release may migrate the file (not on probation); default: from the
        update state beside the file (`gateway.releases.formats`)."""
        self.path = path
        self.gate = gate or FormatGate.at(path.parent)
        self.seq_file = path.with_name(path.name + ".seq")
        self.reserve = DiskReserve(path.with_name(path.name + ".reserve"))
        self.report = OpenReport()
        self.lock = threading.RLock()  # held by write transactions and shared-connection reads
        self.exclusive = False
        self.schema_ready = False
        self.corrupt = CorruptRows()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open(exclusive=False)
        except OutboxUnavailable as exc:
            if not _is_full(exc):
                raise
            # A full disk: give back the reserve, and if that is not enough open without the
            # shared-memory file (which is what SQLite could not create).
            self.reserve.release()
            try:
                self._open(exclusive=False)
            except OutboxUnavailable as exc2:
                if not _is_full(exc2):
                    raise
                self._open(exclusive=True)
                self.exclusive = True
                self.report.degraded = f"disk full at start: {exc2}"
                log.error("outbox: the disk is full; opened in exclusive mode (no -shm file) until restart")
        register(path, self)
        self.ensure_schema()
        meta = self.meta()
        self.report.was_clean_shutdown = self.report.created or meta.get("clean_shutdown", 0) == 1
        self.set_meta({"clean_shutdown": 0})
        self.reserve.keep()

    def _open(self, *, exclusive: bool) -> None:
        path = self.path
        rows, salvaged = None, None
        if path.exists():
            wal = read_wal(path)  # before any connection: closing one may checkpoint it away
            reason = _check(path, exclusive) or wal_damage(path, wal)
            if reason is not None:
                try:
                    rows, salvaged = salvage_file(path, wal)
                except Exception:  # never worse than the quarantine alone: the daemon must start
                    log.exception("outbox salvage failed: the rows of the bad file stay in it, unsent")
                self.report.quarantined_to = str(quarantine(path, reason))
                self.report.quarantine_reason = reason
                self.report.salvage = salvaged
        self.report.created = not path.exists()
        try:
            self.conn = connect(path, exclusive=exclusive)
            (version,) = self.conn.execute("PRAGMA user_version").fetchone()
        except sqlite3.OperationalError as exc:
            raise OutboxUnavailable(f"cannot open the outbox {path}: {exc}") from exc
        if version:
            try:
                self.gate.check(FORMAT, version, f"the outbox {path}")
            except FormatError as exc:
                self.conn.close()
                raise OutboxUnavailable(str(exc)) from exc
        if rows is not None and salvaged is not None:
            self.ensure_schema()
            try:
                reinsert(
                    self.conn, {int(k): t for k, t in TABLES.items()}, rows, salvaged, self.read_reservation()
                )
            except sqlite3.OperationalError as exc:
                if not _is_full(exc):
                    raise
                salvaged.stored = False
                log.error(
                    "outbox: the salvaged rows do not fit on the disk (%s); they stay in %s",
                    exc,
                    self.report.quarantined_to,
                )
                return
            self.report.created = False  # it holds the salvaged rows and a last_seq above them

    def ensure_schema(self) -> bool:
        """Create or migrate the tables; False (retried by the writer) when the disk is full."""
        if self.schema_ready:
            return True
        try:
            migrate(self.conn, self.gate, f"the outbox {self.path}")
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            log.error("outbox: cannot migrate the schema yet (disk full): %s", exc)
            return False
        self.schema_ready = True
        return True

    # -- meta ------------------------------------------------------------------------------
    def meta(self) -> dict[str, int]:
        with self.lock:
            return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, values: dict[str, int]) -> None:
        """Upsert meta rows. Inside a transaction errors propagate (the caller rolls back); on its
        own a full disk is logged, not raised: these values are advisory (boot id, clean flag)."""
        with self.lock:
            try:
                self.conn.executemany(
                    "INSERT INTO meta(key, value) VALUES(?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    list(values.items()),
                )
            except sqlite3.OperationalError as exc:
                if self.conn.in_transaction or not _is_full(exc):
                    raise
                log.warning("outbox: cannot write %s (disk full)", ", ".join(values))

    # -- seq ---------------------------------------------------------------------------------
    def initial_row(self) -> int:
        """The last row seq handed out. A database that had to be created (first start, lost or
        quarantined file) starts at the reservation, above every seq the previous one handed out."""
        if self.report.created:
            return self.read_reservation()
        meta = self.meta()  # the native numbering never runs ahead of the rows'
        return self._high_water(max(meta.get("last_row", 0), meta.get("last_seq", 0)), "seq")

    def initial_seq(self) -> int:
        """The last native seq handed out, never below anything this gateway has published (a
        created database: the reservation, which lies above the row seqs and so the native ones)."""
        if self.report.created:
            return self.read_reservation()
        # a schema-2 file not migrated yet (a full disk at start) has one numbering: its `seq`
        return self._high_water(self.meta().get("last_seq", 0), "native_seq" if self.schema_ready else "seq")

    def _high_water(self, last: int, column: str) -> int:
        for table in TABLES.values():
            (top,) = self.conn.execute(f"SELECT COALESCE(MAX({column}), 0) FROM {table}").fetchone()
            last = max(last, top)
        return last

    def read_reservation(self) -> int:
        try:
            return int(self.seq_file.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def reserve_seqs(self, upto: int) -> None:
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
        unregister(self.path, self)
        if clean:
            try:
                self.set_meta({"clean_shutdown": 1})
            except sqlite3.OperationalError as exc:  # a full disk: the next start says "crash"
                log.warning("outbox: cannot record the clean shutdown: %s", exc)
            # Fold the WAL into the database so the next start reads one file; optional.
            with contextlib.suppress(sqlite3.OperationalError):
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()
