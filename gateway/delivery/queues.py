"""Which outbox message goes out next.

Higher classes first. Within a class two queues, each FIFO: *live* (committed after this
connection began) goes at once; *backlog* (committed before) drains at `drain_rate_msg_s` (alarms
are never rate-limited), so after an outage fresh data keeps flowing while the backlog catches up.
The queues are split at a row seq (the outbox's order); native seqs increase with row seqs, so
within a queue and class a receiver sees `seq` increasing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from gateway.core import Clock, Klass, SystemClock
from gateway.storage.outbox.store import OutboxReader, PendingMessage

PAGE = 256


class TokenBucket:
    """`rate` tokens per second, holding at most one second's worth; rate 0 means no limit."""

    def __init__(self, rate: float, clock: Clock) -> None:
        self.rate = rate
        self.clock = clock
        self.tokens = rate
        self.stamp = clock.monotonic()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = self.clock.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait_s(self) -> float:
        """Seconds until the next token (0 if one is there)."""
        if self.rate <= 0 or self.tokens >= 1:
            return 0.0
        return (1 - self.tokens) / self.rate


# Rows of the Sparkplug link (gateway.upstream.bridges.sparkplug): never sent nor acknowledged natively.
SPARKPLUG_PREFIX = "spBv1.0/"


@dataclass(slots=True)
class RowCursor:
    """One link's rows of one class after row `after` (up to `upto`), oldest first, read a page
    at a time: the native link's rows, or with `sparkplug` only the Sparkplug link's. `exhausted`
    once a read finds nothing more: a backlog cursor ends there; a live one is woken by
    `more_committed()` when the writer commits."""

    reader: OutboxReader
    klass: Klass
    after: int
    upto: int | None
    sparkplug: bool = field(kw_only=True)
    buffer: deque[PendingMessage] = field(default_factory=deque)
    exhausted: bool = False

    def more_committed(self) -> None:
        self.exhausted = False

    @property
    def drained(self) -> bool:
        return self.exhausted and not self.buffer

    def next(self) -> PendingMessage | None:
        if not self.buffer and not self.exhausted:
            page = self.reader.page(
                self.klass, self.after, self.upto, PAGE, SPARKPLUG_PREFIX, with_prefix=self.sparkplug
            )
            if page:
                self.buffer.extend(page)
                self.after = page[-1].seq
            else:
                self.exhausted = True
        return self.buffer.popleft() if self.buffer else None


class QueueScheduler:
    """Picks messages for one connection. Create a new one per connection: everything not
    acknowledged is resent from the outbox (at-least-once)."""

    def __init__(
        self, reader: OutboxReader, boundary_row: int, drain_rate_msg_s: float, clock: Clock | None = None
    ) -> None:
        self.reader = reader
        self.boundary_row = boundary_row
        self.bucket = TokenBucket(drain_rate_msg_s, clock or SystemClock())
        order = sorted(Klass, reverse=True)
        self.live = [RowCursor(reader, k, boundary_row, None, sparkplug=False) for k in order]
        self.backlog = [RowCursor(reader, k, 0, boundary_row, sparkplug=False) for k in order]

    def new_data(self) -> None:
        """The writer committed: live queues may have more."""
        for queue in self.live:
            queue.more_committed()

    @property
    def backlog_left(self) -> bool:
        return not all(q.drained for q in self.backlog)

    def next(self) -> PendingMessage | None:
        """Highest class first: live before backlog within a class; the backlog at the drain rate.

        The rate token is asked for at most once per call and kept across classes: asking once per
        class let a token that refilled between two asks send telemetry's backlog ahead of state's."""
        token: bool | None = None
        msg: PendingMessage | None = None
        for live, backlog in zip(self.live, self.backlog, strict=True):
            msg = live.next()
            if msg is not None:
                break
            if backlog.drained:
                continue
            if live.klass != Klass.ALARM:  # alarms' backlog is never rate-limited
                if token is None:
                    token = self.bucket.take()
                if not token:
                    continue
            msg = backlog.next()
            if msg is not None:
                if live.klass != Klass.ALARM:
                    token = None  # spent
                break
        if token:
            self.bucket.tokens += 1  # taken but not spent: give it back
        return msg
