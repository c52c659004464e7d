"""The bounded inbox between the MQTT thread and the command router.

Anyone with broker access can publish on the command topic. Before this inbox, each message became
a task on the event loop at once, without bound, and was parsed (~28 ms for 300 kB of JSON) before
any budget was looked at: 100 messages/s of 300 kB got the daemon OOM-killed in ~22 s.

What a message meets here, in the MQTT thread, before a byte of it is parsed:
1. **Size**: more than `max_bytes` is dropped unread (`oversize`).
2. **Class by size**: real commands are small (a signed `door_pulse` is ~400 bytes); only
   `reload_config` with a whole config is large. Messages up to `small_bytes` go to the *small* lane,
   larger ones to the *large* lane.
3. **Work budget of the large lane**: parsing, canonical form and signature check cost in proportion
   to the bytes, so the large lane admits at most `large_bytes_per_s` (a token bucket holding
   `large_burst_bytes`); a large message over it is dropped unread (`over_budget`). This is what
   spends verification only inside a budget: an unverified flood of big messages costs at most that
   many bytes of parsing per second, whoever sends it.
4. **Bounded queues**: `small_capacity` and `large_capacity` messages; when full the newest is
   dropped (`small_full`, `large_full`). Memory held is at most
   `small_capacity * small_bytes + large_capacity * max_bytes`.
The event loop takes small messages first, so a keyholder's command is not stuck behind a flood of
large ones: it waits for at most the one large message being handled. (Within the small lane the
queue is FIFO: a flood of small messages, cheap to parse and verify, is handled at the router's
own per-sender budgets; past that rate the small lane drops, counted.)

Every drop is counted by reason (`snapshot()`, in `lintel status` under commands.inbox); the first
drop of each reason is logged (by the consumer, never by the MQTT thread), later ones only counted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass

from gateway.core import Clock

log = logging.getLogger("lintel.commands")

REASONS = ("oversize", "over_budget", "small_full", "large_full")


@dataclass(frozen=True, slots=True)
class InboxLimits:
    max_bytes: int = 300_000  # the router's MAX_COMMAND_BYTES: nothing bigger is a command
    small_bytes: int = 16 * 1024
    # A burst of small commands (an operator tool acking many alarms, a fuzzer) waits here rather than
    # being dropped: 1024 × 16 KiB is 16 MiB at worst (typical commands are < 1 KiB).
    small_capacity: int = 1024
    large_capacity: int = 2
    # One full-size message a second: its decode, canonical form and signature check cost ~45 ms of
    # CPU (bench/command_flood.py), so a flood of big messages costs the gateway ~5 % of a core.
    large_bytes_per_s: int = 300_000
    large_burst_bytes: int = 600_000  # a full-size reload_config fits twice


class CommandInbox:
    """Thread-safe: `offer` from the MQTT thread; `get` on the event loop (one consumer)."""

    def __init__(self, clock: Clock, limits: InboxLimits | None = None) -> None:
        self.clock = clock
        self.limits = limits or InboxLimits()
        self._small: deque[bytes] = deque()
        self._large: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._tokens = float(self.limits.large_burst_bytes)
        self._stamp = clock.monotonic()
        self.offered = 0
        self.dropped: dict[str, int] = dict.fromkeys(REASONS, 0)
        self._logged: dict[str, int] = dict.fromkeys(REASONS, 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._waiting = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach the consumer's loop (call on that loop before the MQTT thread offers)."""
        self._loop = loop
        self._ready = asyncio.Event()

    def offer(self, payload: bytes) -> bool:
        """Queue a message from the MQTT thread; False (and counted) if dropped. Never blocks."""
        size = len(payload)
        limits = self.limits
        with self._lock:
            self.offered += 1
            if size > limits.max_bytes:
                return self._drop("oversize")
            if size <= limits.small_bytes:
                if len(self._small) >= limits.small_capacity:
                    return self._drop("small_full")
                self._small.append(payload)
            else:
                if not self._spend(size):
                    return self._drop("over_budget")
                if len(self._large) >= limits.large_capacity:
                    return self._drop("large_full")
                self._large.append(payload)
            wake = self._waiting
            self._waiting = False
        if wake and self._loop is not None and self._ready is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._ready.set)
        return True

    def _spend(self, size: int) -> bool:
        now = self.clock.monotonic()
        limits = self.limits
        self._tokens = min(
            float(limits.large_burst_bytes), self._tokens + (now - self._stamp) * limits.large_bytes_per_s
        )
        self._stamp = now
        if self._tokens < size:
            return False
        self._tokens -= size
        return True

    def _drop(self, reason: str) -> bool:
        self.dropped[reason] += 1
        return False

    def take(self) -> bytes | None:
        """The next message (small lane first), or None when both are empty."""
        with self._lock:
            if self._small:
                return self._small.popleft()
            if self._large:
                return self._large.popleft()
            self._waiting = True
            if self._ready is not None:
                self._ready.clear()
            return None

    async def get(self) -> bytes:
        """Wait for the next message (on the loop given to `bind`)."""
        assert self._ready is not None, "bind() the inbox to its loop first"
        while True:
            payload = self.take()
            if payload is not None:
                self._log_drops()
                return payload
            self._log_drops()
            await self._ready.wait()

    def _log_drops(self) -> None:
        for reason in REASONS:
            seen = self.dropped[reason]
            if seen > self._logged[reason] and self._logged[reason] == 0:
                log.warning(
                    "command inbox: dropped a message unread (%s); further drops are counted "
                    "(lintel status: commands.inbox), not logged",
                    reason,
                )
            self._logged[reason] = seen

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "offered": self.offered,
                "queued": len(self._small) + len(self._large),
                **{f"dropped_{reason}": n for reason, n in self.dropped.items()},
            }
