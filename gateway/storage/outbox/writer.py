"""The outbox writer: the only thread that writes the outbox database.

Contract (README "Delivery contract"):
- `submit()` is non-blocking and thread-safe. A record is *accepted* once the transaction holding
  it commits. Ordinary records are committed in groups at most `commit_window_s` after the first of
  them arrived; an alarm wakes the writer at once, and every commit is fsynced.
- Each message gets the next `seq`; seq is stored in the same transaction (and reserved in a sidecar
  file ahead of use), so it never goes backwards across restarts or a replaced database.
- `ack()` deletes rows the broker acknowledged, by (class, seq), in a commit within ACK_COMMIT_S.
- Each row is written with its crc (`checks.row_crc`); rows readers found bad are deleted, counted
  (`<class>.corrupt`) and reported in an `outbox_row_corrupt` event.
- A full disk: the reserve file is released and the WAL truncated, low classes are evicted, and
  alarms then events are held in memory (bounded); a held record is not counted as dropped.
- Space: per-class byte caps, a total byte cap and per-class age limits; when over, the oldest
  messages of the lowest class go first; alarms are never evicted for space. At the disk floor only
  alarms and events are accepted. Every dropped record is counted once, by class and reason, and the
  counters persist.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from gateway.core import Clock, Event, Klass, Record
from gateway.storage.outbox.checks import row_crc
from gateway.storage.outbox.drops import DropCounter
from gateway.storage.outbox.messages import (
    Item,
    MessageRow,
    OutboxLimits,
    ResultBody,
    StatsBody,
    build_messages,
    item_klass,
)
from gateway.storage.outbox.space import SpaceKeeper
from gateway.storage.outbox.store import SEQ_RESERVE_BLOCK, TABLES, OutboxStore
from gateway.upstream.encode import Encoder

log = logging.getLogger("lintel.outbox")

MIB = 1024 * 1024
EARLY_COMMIT_RECORDS = 20_000  # commit before the window ends once this many records wait
MAINTENANCE_INTERVAL_S = 30.0


RETRY_KEEP_MAX = 10_000  # alarms and events held in memory while the disk is full
# Acknowledged rows are deleted by a commit at most this long after the ack arrived (not a whole
# commit window later): what a kill -9 sends again is the in-flight window plus the acks waiting
# here, and this keeps the second part small (README, delivery contract clause 4).
ACK_COMMIT_S = 0.05


class _DiskFull(Exception):
    """No room on the disk for this commit, even after evicting low classes. `items` are the
    records of the group that were not counted as dropped yet (what the retry may hold)."""

    def __init__(self, why: str, items: list[Item]) -> None:
        super().__init__(why)
        self.items = items


def _is_full(exc: sqlite3.Error) -> bool:
    return "full" in str(exc).lower()


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite rolls back by itself on some errors (SQLITE_FULL): only roll back what is still open.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class OutboxWriter:
    def __init__(
        self,
        store: OutboxStore,
        encoder: Encoder,
        clock: Clock,
        limits: OutboxLimits,
        on_commit: Callable[[int], None] | None = None,
        disk_free: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self.encoder = encoder
        self.clock = clock
        self.limits = limits
        self.on_commit = on_commit
        self._disk_free = disk_free or self._statvfs_free
        self._cond = threading.Condition()
        self._pending: list[Item] = []
        self._pending_since: float | None = None
        self._alarm_waiting = False
        self._acks: list[tuple[Klass, int, int]] = []
        self._acks_since: float | None = None
        self._acks_in_commit = 0
        self._flush_requested = 0
        self._commits_started = 0
        self._commits_done = 0
        self._stop = False
        self._thread: threading.Thread | None = None
        self.last_seq = store.initial_seq()
        self._reserved = max(store.read_reservation(), self.last_seq)
        self.totals: dict[Klass, list[int]] = {k: list(v) for k, v in store.class_totals().items()}
        self.drops = DropCounter(store.meta())
        self.space = SpaceKeeper(
            store.conn,
            self.totals,
            self.drops,
            limits.class_max_bytes,
            limits.max_bytes,
            limits.class_max_age_ms,
        )
        self.accepted_records = 0
        self.accepted_payload_bytes = 0
        self.commits = 0
        self.last_commit_ms: int | None = None
        self._last_commit_mono: float | None = None
        self.last_error: str | None = None
        self.at_disk_floor = False
        self.disk_full = False
        self.held = 0  # alarms/events held in memory because the disk is full
        self._group_items: list[Item] = []  # the records of the commit under way, none counted yet
        self.corrupt_rows = 0  # rows that failed their crc and were removed (this run)
        self._next_maintenance = 0.0
        store.corrupt.listener = self._wake

    # -- API used by other threads ----------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox-writer", daemon=True)
        self._thread.start()

    def submit(self, record: Record) -> bool:
        """Queue a record for the next commit. False (and counted) if the queue is full."""
        return self.submit_many((record,))[0]

    def submit_many(self, records: Sequence[Record]) -> list[bool]:
        """`submit` for a batch under one lock: whether each record was queued (telemetry is refused,
        and counted, once the queue is full; other classes always go in)."""
        taken: list[bool] = []
        with self._cond:
            for record in records:
                klass = record.klass
                if klass == Klass.TELEMETRY and len(self._pending) >= self.limits.max_pending:
                    self.drops.count(klass, "queue_full", 1)
                    taken.append(False)
                    continue
                self._pending.append(record)
                taken.append(True)
                if klass == Klass.ALARM:
                    self._alarm_waiting = True
            if self._pending_since is None and self._pending:
                self._pending_since = self.clock.monotonic()
                self._cond.notify()  # the writer may be asleep with no deadline: give it one
            elif self._alarm_waiting or len(self._pending) >= EARLY_COMMIT_RECORDS:
                self._cond.notify()
        return taken

    def submit_stats(self, body: Mapping[str, Any]) -> None:
        """Queue a gateway stats message (state class)."""
        with self._cond:
            self._pending.append(StatsBody(body))
            if self._pending_since is None:
                self._pending_since = self.clock.monotonic()
                self._cond.notify()  # the writer may be asleep with no deadline: give it one

    def submit_result(self, body: Mapping[str, Any]) -> None:
        """Queue a command result (event class)."""
        with self._cond:
            self._pending.append(ResultBody(body))
            if self._pending_since is None:
                self._pending_since = self.clock.monotonic()
                self._cond.notify()  # the writer may be asleep with no deadline: give it one

    def _wake(self) -> None:
        """Something needs a commit soon (a reader found a corrupt row)."""
        with self._cond:
            if self._pending_since is None:
                self._pending_since = self.clock.monotonic()
                self._cond.notify()

    def ack(self, acks: Iterable[tuple[Klass, int, int]]) -> None:
        """Delete acknowledged messages, given as (class, seq, size) triples."""
        with self._cond:
            self._acks.extend(acks)
            if self._acks_since is None:
                self._acks_since = self.clock.monotonic()
                self._cond.notify()  # the writer may be asleep with a later deadline: give it this one

    def undeleted_acks(self) -> int:
        """Acknowledged rows not deleted yet (a kill -9 now would send them again). An uplink that
        counts these in its in-flight window keeps duplicates after a crash within that window."""
        with self._cond:
            return len(self._acks) + self._acks_in_commit

    def flush(self, timeout: float = 10.0) -> bool:
        """Commit everything submitted so far; True when done within the timeout."""
        with self._cond:
            # The next commit to start takes everything submitted before this call.
            target = self._commits_started + 1
            self._flush_requested = target
            self._cond.notify()
            deadline = self.clock.monotonic() + timeout
            while self._commits_done < target:
                left = deadline - self.clock.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
        # Records held in memory because the disk is full are not committed: not done.
        return not self.disk_full

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is pending, mark a clean shutdown and close the database."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self.store.close(clean=True)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def progressed_recently(self, within_s: float) -> bool:
        """A commit went through, or a commit found the disk full and holds its records for the
        next try, within `within_s`. A full disk is not a hang: a restart would not make room and
        would lose what is held in memory. Any other failing commit is no progress (a restart
        reopens, and if need be salvages, the database)."""
        last = self._last_commit_mono
        return last is not None and self.clock.monotonic() - last < within_s

    def pending_count(self) -> int:
        with self._cond:
            return len(self._pending)

    def snapshot(self) -> dict[str, Any]:
        """Counters for status and stats messages (read without the lock: a consistent-enough view)."""
        return {
            "last_seq": self.last_seq,
            "rows": {k.label: self.totals[k][0] for k in Klass},
            "bytes": {k.label: self.totals[k][1] for k in Klass},
            "pending_records": len(self._pending),
            "accepted_records": self.accepted_records,
            "commits": self.commits,
            "last_commit_ms": self.last_commit_ms,
            "dropped": self.drops.snapshot(),
            "at_disk_floor": self.at_disk_floor,
            "disk_full": self.disk_full,
            "held_in_memory": self.held,
            "degraded": self.degraded,
            "corrupt_rows": self.corrupt_rows,
            "last_error": self.last_error,
        }

    @property
    def degraded(self) -> str | None:
        """Why the outbox is not fully working (None when it is): for status and birth."""
        if self.disk_full:
            return f"disk full: {self.held} alarms/events held in memory"
        if self.store.report.degraded:
            return self.store.report.degraded
        if self.at_disk_floor:
            return "disk floor: only alarms and events are accepted"
        return None

    # -- writer thread ------------------------------------------------------------------------
    def _due(self) -> float | None:
        """Seconds until the next commit is due (0 = now), None when there is nothing to do."""
        if self._stop or self._alarm_waiting or self._flush_requested > self._commits_started:
            return 0.0
        if len(self._pending) >= EARLY_COMMIT_RECORDS:
            return 0.0
        due_at = []
        if self._pending_since is not None:
            due_at.append(self._pending_since + self.limits.commit_window_s)
        if self._acks_since is not None:
            due_at.append(self._acks_since + ACK_COMMIT_S)
        if not due_at:
            return None
        return max(0.0, min(due_at) - self.clock.monotonic())

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    due = self._due()
                    if due == 0.0:
                        break
                    maintenance_in = max(0.0, self._next_maintenance - self.clock.monotonic())
                    self._cond.wait(maintenance_in if due is None else min(due, maintenance_in))
                    if self.clock.monotonic() >= self._next_maintenance:
                        break
                items, self._pending = self._pending, []
                acks, self._acks = self._acks, []
                self._acks_in_commit = len(acks)
                self._pending_since = self._acks_since = None
                self._alarm_waiting = False
                stopping = self._stop
                self._commits_started += 1
                number = self._commits_started
            self._group_items = items
            try:
                self._commit(items, acks)
            except _DiskFull as exc:
                self.last_error = f"disk full: {exc}"
                self._keep_for_retry(exc.items, acks)
                self._last_commit_mono = self.clock.monotonic()  # alive and retrying: progress
            except Exception as exc:  # never let the writer die: the daemon would lose everything
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("outbox commit failed; %d records not accepted", len(items))
                with self._cond:
                    for item in self._group_items:  # not those already counted at the disk floor
                        if not isinstance(item, StatsBody):
                            self.drops.count(item.klass, "write_error", 1)
            with self._cond:
                self._commits_done = number
                self._acks_in_commit = 0
                self._cond.notify_all()
            if self.on_commit is not None and items:
                self.on_commit(self.last_seq)
            if stopping:
                with self._cond:
                    left = len(self._pending)
                if left and not self.disk_full:
                    continue  # records submitted while the last commit ran: commit them too
                if left:
                    log.error("outbox: %d alarms/events could not be written (disk full) and are lost", left)
                return

    # -- one transaction -----------------------------------------------------------------------
    def _at_floor(self, items: list[Item]) -> list[Item]:
        """At the disk floor only alarms and events remain; the rest is counted once, here."""
        kept: list[Item] = []
        for item in items:
            if item_klass(item) >= Klass.EVENT:
                kept.append(item)
            elif not isinstance(item, StatsBody):  # stats are made again; they are not records
                self.drops.count(item_klass(item), "disk_floor", 1)
        return kept

    def _group(self, items: list[Item], now_ms: int) -> list[MessageRow]:
        """Messages for this commit, with seqs reserved ahead."""
        rows = build_messages(items, self.encoder, self.last_seq, now_ms, self.limits.batch_max_readings)
        if rows:
            self._ensure_reserved(rows[-1][1])  # durable before the transaction that uses them
        return rows

    def _ensure_reserved(self, upto: int) -> None:
        if upto > self._reserved:
            self._reserved = upto + SEQ_RESERVE_BLOCK
            self.store.reserve(self._reserved)

    def _commit(self, items: list[Item], acks: list[tuple[Klass, int, int]]) -> None:
        """Encode and commit one group. Raises _DiskFull when the disk has no room even after
        evicting low classes (nothing of this group is accepted then)."""
        now_ms = self.clock.time_ms()
        free = self._disk_free()
        at_floor = free < self.limits.min_free_bytes
        if at_floor != self.at_disk_floor:
            self.at_disk_floor = at_floor
            if at_floor:
                log.error("disk floor reached (%d MiB free): refusing all but alarms", free // MIB)
            else:
                log.warning("disk floor cleared (%d MiB free): accepting all records again", free // MIB)
        if at_floor:
            items = self._at_floor(items)
        self._group_items = items
        if not self.store.ensure_schema():
            raise _DiskFull("the schema cannot be migrated", items)
        try:
            rows = self._group(items, now_ms)
        except OSError as exc:  # the seq reservation file could not be written
            if exc.errno == errno.ENOSPC:
                raise _DiskFull(str(exc), items) from None
            raise
        maintenance = self.clock.monotonic() >= self._next_maintenance
        try:
            self._transaction(rows, acks, now_ms, at_floor, maintenance)
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            # No room. The outbox's own files may be what fills the disk: give back the reserve,
            # fold the WAL into the database and truncate it; then make room from the lowest
            # classes (this needs room too, in the WAL) and retry.
            self._set_disk_full(True)
            self.store.release_reserve()
            with contextlib.suppress(sqlite3.OperationalError):
                self.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            need = sum(len(r[3]) + len(r[2]) for r in rows) * 2 + 64 * 1024
            with contextlib.suppress(sqlite3.OperationalError), self._write_txn():
                self.space.evict_lowest(need, "disk_full")
            try:
                self._transaction(rows, acks, now_ms, at_floor, maintenance)
            except sqlite3.OperationalError as exc2:
                if not _is_full(exc2):
                    raise
                raise _DiskFull(str(exc2), items) from None
        self._set_disk_full(False)
        self.held = 0
        if maintenance:
            self._next_maintenance = self.clock.monotonic() + MAINTENANCE_INTERVAL_S
            if not at_floor:
                self.store.keep_reserve()  # room for the next full disk (needs 4x its size free)
        self.last_error = None

    def _set_disk_full(self, full: bool) -> None:
        if full != self.disk_full:
            self.disk_full = full
            if full:
                log.error("outbox: the disk is full: evicting low classes, holding alarms, events in memory")
            else:
                log.warning("outbox: the disk has room again")

    def _keep_for_retry(self, items: list[Item], acks: list[tuple[Klass, int, int]]) -> None:
        """The disk is full: hold alarms, then events, up to RETRY_KEEP_MAX, for the next commit.
        Only what is let go is counted (`disk_full`), once: a held record is not a drop."""
        keep = [i for i in items if not isinstance(i, StatsBody) and item_klass(i) >= Klass.EVENT]
        keep.sort(key=lambda i: item_klass(i) != Klass.ALARM)  # stable: alarms first, order kept
        kept, over = keep[:RETRY_KEEP_MAX], keep[RETRY_KEEP_MAX:]
        for item in [
            *over,
            *(i for i in items if not isinstance(i, StatsBody) and item_klass(i) < Klass.EVENT),
        ]:
            self.drops.count(item_klass(item), "disk_full", 1)
        self.held = len(kept)
        with self._cond:
            self._pending[:0] = kept
            self._acks[:0] = acks
            if kept or acks:  # retried a commit window later, not every ACK_COMMIT_S
                self._pending_since = self.clock.monotonic()

    def _transaction(
        self,
        rows: list[MessageRow],
        acks: list[tuple[Klass, int, int]],
        now_ms: int,
        at_floor: bool,
        maintenance: bool,
    ) -> None:
        new_last = rows[-1][1] if rows else self.last_seq
        with self._write_txn() as cur:
            for klass, seq, size in acks:
                cur.execute(f"DELETE FROM {TABLES[klass]} WHERE seq=?", (seq,))
                if cur.rowcount:
                    self.totals[klass][0] -= 1
                    self.totals[klass][1] -= size
            self._remove_corrupt(cur)
            by_class: dict[Klass, list[tuple[int, str, bytes, int, int, int]]] = defaultdict(list)
            for klass, seq, topic, payload, n in rows:
                crc = row_crc(int(klass), seq, n, topic.encode(), payload)
                by_class[klass].append((seq, topic, payload, now_ms, n, crc))
            added_bytes = 0
            for klass, values in by_class.items():
                cur.executemany(
                    f"INSERT INTO {TABLES[klass]}(seq, topic, payload, created_ms, records, crc) "
                    "VALUES(?,?,?,?,?,?)",
                    values,
                )
                size = sum(len(v[1]) + len(v[2]) for v in values)
                added_bytes += size
                self.totals[klass][0] += len(values)
                self.totals[klass][1] += size
            if at_floor and added_bytes:
                # Alarms still get in at the floor: give back as much as they took, if anything can go.
                self.space.evict_lowest(added_bytes, "disk_floor")
            if maintenance:
                self.space.expire(now_ms)
            self.space.enforce_caps()
            if rows:
                self.store.set_meta({"last_seq": new_last})
        self.last_seq = new_last
        self.accepted_records += sum(r[4] for r in rows)
        self.accepted_payload_bytes += sum(len(r[3]) for r in rows)
        self.commits += 1
        self.last_commit_ms = now_ms
        self._last_commit_mono = self.clock.monotonic()

    @contextlib.contextmanager
    def _write_txn(self) -> Iterator[sqlite3.Cursor]:
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
                _rollback(conn)
                for klass, values in totals_before.items():  # in place: the SpaceKeeper shares the dict
                    self.totals[klass][:] = values
                self.drops.settle(committed=False)
                raise
        self.drops.settle(committed=True)

    def _remove_corrupt(self, cur: sqlite3.Cursor) -> None:
        """Delete the rows readers found bad (checked again here), count each once, and queue one
        `outbox_row_corrupt` event naming them."""
        found = self.store.corrupt.take()
        removed: dict[str, list[int]] = defaultdict(list)
        for klass, seq in found:
            row = cur.execute(
                f"SELECT CAST(topic AS BLOB), payload, records, crc, LENGTH(payload) + LENGTH(topic) "
                f"FROM {TABLES[klass]} WHERE seq=?",
                (seq,),
            ).fetchone()
            if row is None:
                continue  # acknowledged or evicted meanwhile
            topic, payload, records, crc, size = row
            if crc is None or (
                isinstance(records, int) and row_crc(int(klass), seq, records, topic, payload) == crc
            ):
                continue  # it reads well now: a reader's transient error, keep it
            cur.execute(f"DELETE FROM {TABLES[klass]} WHERE seq=?", (seq,))
            self.totals[klass][0] -= 1
            self.totals[klass][1] -= size or 0
            self.drops.count(klass, "corrupt", 1, in_txn=True)
            removed[klass.label].append(seq)
        if removed:
            n = sum(len(v) for v in removed.values())
            self.corrupt_rows += n
            log.error("outbox: %d rows failed their checksum and were removed: %s", n, dict(removed))
            event = Event(
                "gateway",
                "outbox_row_corrupt",
                self.clock.time_ms(),
                {"rows": n, "seqs": {k: v[:100] for k, v in removed.items()}},
                "warning",
            )
            with self._cond:  # committed with the next group; a record like any other
                self._pending.append(event)
                if self._pending_since is None:
                    self._pending_since = self.clock.monotonic()

    def _statvfs_free(self) -> int:
        st = os.statvfs(self.store.path.parent)
        return st.f_bavail * st.f_frsize
