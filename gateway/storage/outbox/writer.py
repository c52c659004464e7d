"""The outbox writer: the only thread that writes the outbox database.

Contract (README "Delivery contract"):
- `submit()` is non-blocking and thread-safe. A record is *accepted* once the transaction holding
  it commits. Ordinary records are committed in groups at most `commit_window_s` after the first of
  them arrived; an alarm wakes the writer at once, and every commit is fsynced.
- Each message gets the next row `seq`, a native one also the next native seq (bridge rows have
  none: a hole in it is a counted drop); stored in the same transaction and reserved ahead of use.
- `ack()` deletes rows the broker acknowledged, by (class, seq), in a commit within ACK_COMMIT_S.
- Each row is written with its crc (`checks.row_crc`); rows readers found bad are deleted, counted
  (`<class>.corrupt`) and reported in an `outbox_row_corrupt` event.
- A full disk: reserve released, WAL truncated, telemetry and state evicted, alarms then events held
  in memory (bounded); a held record is not counted as dropped.
- Space: per-class byte caps, a total byte cap and per-class age limits; when over, the oldest
  messages of the lowest class go first; alarms are never evicted for space. At the disk floor only
  alarms and events are accepted, and room for them comes only from telemetry and state (commit.py).
  Every dropped record is counted once, by class and reason, and the counters persist.
The commit itself (numbering, floor, transaction, full disk) is commit.py's `Committer`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from gateway.core import Clock, Klass, Record
from gateway.storage.outbox.commit import Ack, Committer, DiskFull, held_on_full_disk
from gateway.storage.outbox.messages import Item, OutboxLimits, ResultBody, StatsBody
from gateway.storage.outbox.report import ClassCounts, OutboxReport
from gateway.storage.outbox.store import OutboxStore
from gateway.upstream.encode import Encoder

log = logging.getLogger("lintel.outbox")

EARLY_COMMIT_RECORDS = 20_000  # commit before the window ends once this many records wait
RETRY_KEEP_MAX = 10_000  # alarms and events held in memory while the disk is full
# Acknowledged rows are deleted by a commit at most this long after the ack arrived (not a whole
# commit window later): what a kill -9 sends again is the in-flight window plus the acks waiting
# here, and this keeps the second part small (README, delivery contract clause 4).
ACK_COMMIT_S = 0.05


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
        self.store, self.clock, self.limits = store, clock, limits
        self.on_commit = on_commit
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
        self.committer = Committer(store, encoder, clock, limits)
        if disk_free is not None:
            self.committer.disk_free = disk_free
        self.totals, self.drops = self.committer.totals, self.committer.drops  # shared, updated in place
        self.last_error: str | None = None
        self.held = 0  # alarms/events held in memory because the disk is full
        store.corrupt.listener = lambda: self._queue(None)

    @property
    def last_row(self) -> int:
        """The last row seq committed (the outbox's order: the links' boundaries are row seqs)."""
        return self.committer.position[0]

    @property
    def last_seq(self) -> int:
        """The last native seq committed (what receivers see)."""
        return self.committer.position[1]

    @property
    def position(self) -> tuple[int, int]:
        """(last row seq, last native seq) of one and the same commit."""
        return self.committer.position

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
        self._queue(StatsBody(body))

    def submit_result(self, body: Mapping[str, Any]) -> None:
        """Queue a command result (event class)."""
        self._queue(ResultBody(body))

    def _queue(self, item: Item | None) -> None:
        """Queue `item` (None: nothing, a reader found a corrupt row) for a commit within the window."""
        with self._cond:
            if item is not None:
                self._pending.append(item)
            if self._pending_since is None:
                self._pending_since = self.clock.monotonic()
                self._cond.notify()  # the writer may be asleep with no deadline: give it one

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
        return not self.committer.disk_full

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
        last = self.committer.last_commit_mono
        return last is not None and self.clock.monotonic() - last < within_s

    def pending_count(self) -> int:
        with self._cond:
            return len(self._pending)

    def report(self) -> OutboxReport:
        """Counters for status and stats (read without the lock: a consistent-enough view)."""
        c = self.committer
        return OutboxReport(
            last_seq=self.last_seq,
            rows=ClassCounts(*(self.totals[k][0] for k in sorted(Klass))),
            bytes=ClassCounts(*(self.totals[k][1] for k in sorted(Klass))),
            pending_records=len(self._pending),
            accepted_records=c.accepted_records,
            commits=c.commits,
            last_commit_ms=c.last_commit_ms,
            dropped=self.drops.snapshot(),
            at_disk_floor=c.at_disk_floor,
            disk_full=c.disk_full,
            held_in_memory=self.held,
            degraded=self.degraded,
            corrupt_rows=c.corrupt_rows,
            last_error=self.last_error,
            native_seqs_dropped=self.drops.native_seqs,
        )

    def backlog_rows(self) -> int:
        return sum(t[0] for t in self.totals.values())

    @property
    def degraded(self) -> str | None:
        """Why the outbox is not fully working (None when it is): for status and birth."""
        return self.committer.degraded(self.held)

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
                    maintenance_in = max(0.0, self.committer.next_maintenance - self.clock.monotonic())
                    self._cond.wait(maintenance_in if due is None else min(due, maintenance_in))
                    if self.clock.monotonic() >= self.committer.next_maintenance:
                        break
                items, self._pending = self._pending, []
                acks, self._acks = self._acks, []
                self._acks_in_commit = len(acks)
                self._pending_since = self._acks_since = None
                self._alarm_waiting = False
                stopping = self._stop
                self._commits_started += 1
                number = self._commits_started
            self.committer.uncounted = items
            try:
                self.committer.commit(items, acks)
                self.held = 0
                self.last_error = None
            except DiskFull as exc:
                self.last_error = f"disk full: {exc}"
                self._keep_for_retry(exc.items, acks)
                self.committer.last_commit_mono = self.clock.monotonic()  # alive and retrying: progress
            except Exception as exc:  # never let the writer die: the daemon would lose everything
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("outbox commit failed; %d records not accepted", len(items))
                with self._cond:
                    for item in self.committer.uncounted:  # not those already counted at the floor
                        if not isinstance(item, StatsBody):
                            self.drops.count(item.klass, "write_error", 1)
            found, self.committer.found_corrupt = self.committer.found_corrupt, None
            if found is not None:  # committed with the next group; a record like any other
                self.submit(found)
            with self._cond:
                self._commits_done = number
                self._acks_in_commit = 0
                self._cond.notify_all()
            if self.on_commit is not None and items:
                self.on_commit(self.last_row)
            if stopping:
                with self._cond:
                    left = len(self._pending)
                if left and not self.committer.disk_full:
                    continue  # records submitted while the last commit ran: commit them too
                if left:
                    log.error("outbox: %d alarms/events could not be written (disk full) and are lost", left)
                return

    def _keep_for_retry(self, items: list[Item], acks: list[Ack]) -> None:
        """The disk is full: hold what `held_on_full_disk` keeps for the next commit."""
        kept = held_on_full_disk(items, self.drops, RETRY_KEEP_MAX)
        self.held = len(kept)
        with self._cond:
            self._pending[:0] = kept
            self._acks[:0] = acks
            if kept or acks:  # retried a commit window later, not every ACK_COMMIT_S
                self._pending_since = self.clock.monotonic()
