"""A command budget per sender, so that one sender's flood never blocks another.

A sender is a verified operator key, or `local` (the control socket), or `unauthenticated` (every
command that did not verify, and unsigned pings, together). Each has a token bucket holding up to
`per_minute` commands, refilled at `per_minute` per minute. Senders are only created for verified
keys and the two fixed names, so the table is bounded by the config, whatever arrives.

When a sender's budget is spent, its first refused command is answered `rate_limited` (the
operator learns why) and the following ones are dropped unanswered until it gets a token again:
answering a flood would flood the uplink in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gateway.core import Clock

UNAUTHENTICATED = "unauthenticated"


class Admission(Enum):
    ADMIT = "admit"
    REFUSE = "refuse"  # answer rate_limited
    DROP = "drop"  # refuse silently


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    refused: bool = False


class SenderBudgets:
    def __init__(self, clock: Clock, per_minute: int) -> None:
        self.clock = clock
        self.per_minute = per_minute
        self._buckets: dict[str, _Bucket] = {}

    def take(self, sender: str) -> Admission:
        """Spend one token of `sender` (a bounded name, see the module docstring)."""
        now = self.clock.monotonic()
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = self._buckets[sender] = _Bucket(float(self.per_minute), now)
        rate = self.per_minute / 60.0
        bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.refused = False
            return Admission.ADMIT
        if bucket.refused:
            return Admission.DROP
        bucket.refused = True
        return Admission.REFUSE
