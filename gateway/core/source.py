"""The Source extension point: how a driver hands records to the gateway without knowing it.

A driver implements `Source.run(ctx)` and produces records through `ctx.emit` until it is cancelled.
It raises `SourceUnavailable` for faults worth retrying (the supervisor backs off and calls `run`
again); any other exception is a bug, logged with its traceback and restarted within a budget.
"""

from __future__ import annotations

import asyncio
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

from gateway.core.clock import Clock
from gateway.core.persist import KeyValueStore, MemoryStore
from gateway.core.records import Event, Klass, Reading, Record, Severity, Value


def raise_if_cancelled() -> None:
    """End the current task if its cancellation was requested but swallowed by awaited code.

    Python 3.11's `asyncio.wait_for` returns the awaited result instead of raising CancelledError
    when that result arrives in the same loop turn as the cancel (bpo-42130, fixed in 3.12).
    pymodbus awaits every response that way, so at 1 ms polling a SIGTERM was lost in most stops and
    the source polled on. A task whose cancellation is still requested (`cancelling()`, which
    `asyncio.timeout` and TaskGroup withdraw when they handle their own) must end: call this right
    after awaiting third-party code, outside any `asyncio.timeout` block.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def next_deadline(deadline: float, interval_s: float, now: float) -> tuple[float, int]:
    """The next slot on the fixed grid `deadline + k·interval_s` after a run ending at `now`.

    Returns (next deadline, slots skipped): slots that passed while the run was still going are
    skipped, not run back to back, so a slow run never drifts the schedule nor causes a burst.
    """
    deadline += interval_s
    if deadline > now:
        return deadline, 0
    skipped = math.floor((now - deadline) / interval_s) + 1
    return deadline + skipped * interval_s, skipped


class SourceContext:
    """What a running source may touch: its id, the clock, a logger, a non-blocking emit and a
    small key-value store.

    `emit` never blocks the event loop: it returns False when the record was refused (the pipeline is
    full), and the refusal is counted by the pipeline. `progress()` tells the watchdog the source is
    alive; a source that stops calling it is reported as stalled. `store` keeps small state across
    restarts (the daemon's state.db); without one, an in-memory store that forgets at exit.
    """

    __slots__ = ("_emit", "_emit_many", "_on_progress", "clock", "log", "source_id", "store")

    def __init__(
        self,
        source_id: str,
        clock: Clock,
        emit: Callable[[Record], bool],
        on_progress: Callable[[], None] = lambda: None,
        log: logging.Logger | None = None,
        store: KeyValueStore | None = None,
        emit_many: Callable[[Sequence[Record]], bool] | None = None,
    ) -> None:
        self.source_id = source_id
        self.clock = clock
        self._emit = emit
        self._emit_many = emit_many
        self._on_progress = on_progress
        self.log = log or logging.getLogger(f"lintel.source.{source_id}")
        self.store: KeyValueStore = store if store is not None else MemoryStore()

    def emit(self, record: Record) -> bool:
        return self._emit(record)

    def emit_many(self, records: Sequence[Record]) -> bool:
        """Emit a batch (a poll's readings) in order, in one pass down the pipeline where the
        runtime offers one: the same records as `emit` each, a fraction of the calls. False when any
        was refused (each refusal is counted where it happened)."""
        if self._emit_many is not None:
            return self._emit_many(records)
        ok = True
        for record in records:
            ok = self._emit(record) and ok
        return ok

    def progress(self) -> None:
        self._on_progress()

    def reading(self, point: str, value: Value, *, klass: Klass = Klass.TELEMETRY) -> Reading:
        """A reading of this source stamped with the clock's current time."""
        return Reading(self.source_id, point, value, self.clock.time_ms(), klass=klass)

    def event(self, kind: str, severity: Severity = "info", **attrs: object) -> Event:
        """An event of this source stamped with the clock's current time."""
        return Event(self.source_id, kind, self.clock.time_ms(), attrs, severity)


@runtime_checkable
class Source(Protocol):
    async def run(self, ctx: SourceContext) -> None:
        """Produce records until cancelled. Raise SourceUnavailable for retryable faults."""
        ...


@runtime_checkable
class PacedSource(Protocol):
    """A source whose healthy silence is longer than a moment: it reports progress once per poll.

    `progress_every_s` is the longest a healthy source goes between two `progress()` calls (its
    poll interval). The watchdog allows that much on top of `runtime.stall_after_s`, so a meter read
    every 5 minutes is not taken for a hang (and the gateway is not restarted for it)."""

    @property
    def progress_every_s(self) -> float: ...


class PollingSource(ABC):
    """Owns the interval loop of a pull device.

    The cadence is jitter-free: deadlines sit on a fixed grid started at the first poll, so a slow
    poll never drifts the schedule; polls that would have started while a slow one ran are skipped
    (counted in `missed_polls`) rather than run back to back.
    """

    def __init__(self, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.interval_s = interval_s
        self.missed_polls = 0

    @property
    def progress_every_s(self) -> float:
        """Progress is reported after each poll (`PacedSource`)."""
        return self.interval_s

    async def open(self, ctx: SourceContext) -> None:  # noqa: B027 - optional hook
        """Acquire the device. Raise SourceUnavailable if it is not there."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the device; called even when run() ends by cancellation or error."""

    @abstractmethod
    async def poll(self, ctx: SourceContext) -> Iterable[Record]:
        """Read the device once and return what it measured."""

    async def run(self, ctx: SourceContext) -> None:
        await self.open(ctx)
        try:
            deadline = ctx.clock.monotonic()
            while True:
                records = await self.poll(ctx)
                raise_if_cancelled()  # a driver's library may have swallowed our cancellation
                for record in records:
                    ctx.emit(record)
                ctx.progress()
                now = ctx.clock.monotonic()
                deadline, skipped = next_deadline(deadline, self.interval_s, now)
                self.missed_polls += skipped
                await asyncio.sleep(deadline - now)
        finally:
            await self.close()
