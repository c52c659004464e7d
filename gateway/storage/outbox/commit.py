"""One commit of the outbox writer: numbering, the disk floor, the transaction, a full disk.

Runs only in the writer thread (writer.py owns the thread, the queues and the API).
- Numbering: every message takes the next row `seq`; a native message also the next native seq
  (messages.py). Both are stored in the same transaction; the reservation file (store.py) is renewed
  ahead of use, so neither goes backwards across restarts or a replaced database.
- The disk floor (free space under `min_free_bytes`): telemetry and state are refused (counted
  `disk_floor`); alarms and events are committed, and room for them comes only from the classes
  below them, telemetry and state, as far as those hold any. An event is never evicted to make room
  at the floor, so an `alarm_resolved` follows its alarm; what telemetry and state cannot give back
  comes out of the floor's headroom, as for alarms.
- A full disk (SQLite cannot write): the reserve file is released, the WAL truncated, telemetry and
  state evicted; if the group still does not fit, `DiskFull` carries the records the writer holds
  in memory (alarms, then events) for the next try.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator

from gateway.core import Clock, Event, Klass
from gateway.storage.outbox.checks import row_crc
from gateway.storage.outbox.drops import DropCounter
from gateway.storage.outbox.messages import (
    Item,
    MessageRow,
    OutboxLimits,
    StatsBody,
    build_messages,
    item_klass,
)
from gateway.storage.outbox.repair import remove_corrupt
from gateway.storage.outbox.space import SpaceKeeper, Totals
from gateway.storage.outbox.store import SEQ_RESERVE_BLOCK, TABLES, OutboxStore
from gateway.upstream.encode import Encoder

log = logging.getLogger("lintel.outbox")

MIB = 1024 * 1024
MAINTENANCE_INTERVAL_S = 30.0
Ack = tuple[Klass, int, int]  # class, row seq, size


class DiskFull(Exception):
    """No room on the disk for this commit, even after evicting telemetry and state. `items` are
    the records of the group not counted as dropped yet (what the retry may hold)."""

    def __init__(self, why: str, items: list[Item]) -> None:
        super().__init__(why)
        self.items = items


def held_on_full_disk(items: list[Item], drops: DropCounter, limit: int) -> list[Item]:
    """What of a group that found the disk full is held in memory for the next try: alarms, then
    events, in order, up to `limit`. Only what is let go is counted (`disk_full`), once: a held
    record is not a drop (stats are made again: not records)."""
    keep: list[Item] = [i for i in items if not isinstance(i, StatsBody) and item_klass(i) >= Klass.EVENT]
    keep.sort(key=lambda i: item_klass(i) != Klass.ALARM)  # stable: alarms first, order kept
    kept, over = keep[:limit], keep[limit:]
    lower = (i for i in items if not isinstance(i, StatsBody) and item_klass(i) < Klass.EVENT)
    for item in [*over, *lower]:
        drops.count(item_klass(item), "disk_full", 1)
    return kept


def _is_full(exc: sqlite3.Error) -> bool:
    return "full" in str(exc).lower()


class Committer:
    """The writer thread's commit: see the module. `position` is (last row seq, last native seq),
    replaced as one value after each commit, so another thread reads a consistent pair."""

    def __init__(self, store: OutboxStore, encoder: Encoder, clock: Clock, limits: OutboxLimits) -> None:
        self.store = store
        self.encoder = encoder
        self.clock = clock
        self.limits = limits
        self.disk_free: Callable[[], int] = self._statvfs_free  # bytes free where the outbox lives
        self.totals: Totals = {k: list(v) for k, v in store.class_totals().items()}
        self.drops = DropCounter(store.meta())
        self.space = SpaceKeeper(store.conn, self.totals, self.drops, limits)
        self.position = (store.initial_row(), store.initial_seq())
        self._reserved = max(store.read_reservation(), self.position[0])
        self.uncounted: list[Item] = []  # records of the commit under way not counted as dropped
        self.found_corrupt: Event | None = None  # an `outbox_row_corrupt` event for the next group
        self.at_disk_floor = False
        self.disk_full = False
        self.accepted_records = 0
        self.accepted_payload_bytes = 0
        self.commits = 0
        self.corrupt_rows = 0
        self.last_commit_ms: int | None = None
        self.last_commit_mono: float | None = None
        self.next_maintenance = 0.0

    def degraded(self, held: int) -> str | None:
        """Why the outbox is not fully working (None when it is): for status and birth."""
        if self.disk_full:
            return f"disk full: {held} alarms/events held in memory"
        if self.store.report.degraded:
            return self.store.report.degraded
        if self.at_disk_floor:
            return "disk floor: only alarms and events are accepted"
        return None

    def _statvfs_free(self) -> int:
        st = os.statvfs(self.store.path.parent)
        return st.f_bavail * st.f_frsize

    def commit(self, items: list[Item], acks: list[Ack]) -> None:
        """Encode and commit one group. Raises DiskFull when the disk has no room even after
        evicting telemetry and state (nothing of this group is accepted then)."""
        now_ms = self.clock.time_ms()
        at_floor = self._floor_check()
        if at_floor:
            items = self._at_floor(items)
        self.uncounted = items
        if not self.store.ensure_schema():
            raise DiskFull("the schema cannot be migrated", items)
        try:
            rows = self._number(items, now_ms)
        except OSError as exc:  # the seq reservation file could not be written
            if exc.errno == errno.ENOSPC:
                raise DiskFull(str(exc), items) from None
            raise
        maintenance = self.clock.monotonic() >= self.next_maintenance
        try:
            self._transaction(rows, acks, now_ms, at_floor, maintenance)
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            self._make_room(rows)
            try:
                self._transaction(rows, acks, now_ms, at_floor, maintenance)
            except sqlite3.OperationalError as exc2:
                if not _is_full(exc2):
                    raise
                raise DiskFull(str(exc2), items) from None
        self.set_disk_full(False)
        if maintenance:
            self.next_maintenance = self.clock.monotonic() + MAINTENANCE_INTERVAL_S
            if not at_floor:
                self.store.reserve.keep()  # room for the next full disk (needs 4x its size free)

    def _floor_check(self) -> bool:
        free = self.disk_free()
        at_floor = free < self.limits.min_free_bytes
        if at_floor != self.at_disk_floor:
            self.at_disk_floor = at_floor
            if at_floor:
                log.error("disk floor reached (%d MiB free): accepting only alarms and events", free // MIB)
            else:
                log.warning("disk floor cleared (%d MiB free): accepting all records again", free // MIB)
        return at_floor

    def _at_floor(self, items: list[Item]) -> list[Item]:
        """At the disk floor only alarms and events remain; the rest is counted once, here."""
        kept: list[Item] = []
        for item in items:
            if item_klass(item) >= Klass.EVENT:
                kept.append(item)
            elif not isinstance(item, StatsBody):  # stats are made again; they are not records
                self.drops.count(item_klass(item), "disk_floor", 1)
        return kept

    def _number(self, items: list[Item], now_ms: int) -> list[MessageRow]:
        """Messages for this commit, their row seqs reserved ahead (durably, before use)."""
        last_row, last_seq = self.position
        rows = build_messages(items, self.encoder, last_row, last_seq, now_ms, self.limits.batch_max_readings)
        if rows and rows[-1].seq > self._reserved:
            self._reserved = rows[-1].seq + SEQ_RESERVE_BLOCK
            self.store.reserve_seqs(self._reserved)
        return rows

    def _make_room(self, rows: list[MessageRow]) -> None:
        """No room. The outbox's own files may be what fills the disk: give back the reserve, fold
        the WAL into the database and truncate it; then evict telemetry and state (this needs room
        too, in the WAL)."""
        self.set_disk_full(True)
        self.store.reserve.release()
        with contextlib.suppress(sqlite3.OperationalError):
            self.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        need = sum(r.size for r in rows) * 2 + 64 * 1024
        with contextlib.suppress(sqlite3.OperationalError), self.write_txn():
            self.space.evict_lowest(need, "disk_full", below=Klass.EVENT)

    def set_disk_full(self, full: bool) -> None:
        if full != self.disk_full:
            self.disk_full = full
            if full:
                log.error("outbox: the disk is full: evicting telemetry and state, holding alarms, events")
            else:
                log.warning("outbox: the disk has room again")

    def _transaction(
        self, rows: list[MessageRow], acks: list[Ack], now_ms: int, at_floor: bool, maintenance: bool
    ) -> None:
        with self.write_txn() as cur:
            for klass, seq, size in acks:
                cur.execute(f"DELETE FROM {TABLES[klass]} WHERE seq=?", (seq,))
                if cur.rowcount:
                    self.totals[klass][0] -= 1
                    self.totals[klass][1] -= size
            self._remove_corrupt(cur)
            by_class: dict[Klass, list[tuple[int, str, bytes, int, int, int, int | None]]] = defaultdict(list)
            for r in rows:
                crc = row_crc(int(r.klass), r.seq, r.records, r.topic.encode(), r.payload)
                by_class[r.klass].append((r.seq, r.topic, r.payload, now_ms, r.records, crc, r.native_seq))
            added_bytes = 0
            for klass, values in by_class.items():
                cur.executemany(
                    f"INSERT INTO {TABLES[klass]}(seq, topic, payload, created_ms, records, crc, native_seq) "
                    "VALUES(?,?,?,?,?,?,?)",
                    values,
                )
                size = sum(len(v[1]) + len(v[2]) for v in values)
                added_bytes += size
                self.totals[klass][0] += len(values)
                self.totals[klass][1] += size
            if at_floor and added_bytes:
                # Alarms and events get in at the floor: give back what they took from the classes
                # below them, never from events (an alarm_resolved must follow its alarm).
                self.space.evict_lowest(added_bytes, "disk_floor", below=Klass.EVENT)
            if maintenance:
                self.space.expire(now_ms)
            self.space.enforce_caps()
            position = self.position
            if rows:
                native = [r.native_seq for r in rows if r.native_seq is not None]
                position = (rows[-1].seq, native[-1] if native else position[1])
                self.store.set_meta({"last_row": position[0], "last_seq": position[1]})
        self.position = position
        self.accepted_records += sum(r.records for r in rows)
        self.accepted_payload_bytes += sum(len(r.payload) for r in rows)
        self.commits += 1
        self.last_commit_ms = now_ms
        self.last_commit_mono = self.clock.monotonic()

    @contextlib.contextmanager
    def write_txn(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction that also persists the drop counters. On any error it is rolled
        back, and the in-memory totals and the drops staged inside it are undone with it."""
        conn = self.store.conn
        totals_before = {k: list(v) for k, v in self.totals.items()}
        with self.store.lock:  # a reader sharing this connection must not see a half transaction
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn.cursor()
                meta = self.drops.meta_values()
                # Rows per class, in the same transaction: the salvage's count of what was lost.
                meta.update({f"rows.{k.label}": t[0] for k, t in self.totals.items()})
                self.store.set_meta(meta)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite rolls back by itself on some errors (SQLITE_FULL)
                    conn.execute("ROLLBACK")
                for klass, values in totals_before.items():  # in place: the SpaceKeeper shares the dict
                    self.totals[klass][:] = values
                self.drops.settle(committed=False)
                raise
        self.drops.settle(committed=True)

    def _remove_corrupt(self, cur: sqlite3.Cursor) -> None:
        """Delete the rows readers found bad (checks.remove_corrupt) and leave one
        `outbox_row_corrupt` event naming their native seqs (what receivers miss) for the writer."""
        n, removed = remove_corrupt(cur, self.store.corrupt.take(), self.totals, self.drops)
        if n:
            self.corrupt_rows += n
            log.error("outbox: %d rows failed their checksum and were removed: %s", n, removed)
            self.found_corrupt = Event(
                "gateway",
                "outbox_row_corrupt",
                self.clock.time_ms(),
                {"rows": n, "seqs": {k: v[:100] for k, v in removed.items()}},
                "warning",
            )
