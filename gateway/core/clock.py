"""One injectable clock: wall time for timestamps, monotonic time for intervals.

Production code takes a `Clock`; tests pass a `ManualClock` and move time by hand.
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from typing import Protocol

# Before this instant (2025-01-01 UTC) the wall clock cannot be right: a Pi without a real-time clock
# boots at an old date until NTP answers.
SANE_EPOCH_MS = 1_735_689_600_000


def local_zone(name: str | None) -> dt.tzinfo:
    """The IANA zone `name` (validated by the config), or the system's zone when None."""
    if name:
        return zoneinfo.ZoneInfo(name)
    zone = dt.datetime.now().astimezone().tzinfo
    assert zone is not None
    return zone


def clock_is_set(time_ms: int) -> bool:
    """Whether a wall-clock reading can be trusted as a real date."""
    return time_ms >= SANE_EPOCH_MS


class Clock(Protocol):
    def time_ms(self) -> int:
        """Wall-clock milliseconds since the epoch (for `ts_ms`)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for intervals and deadlines)."""
        ...


class SystemClock:
    def time_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start_ms: int = 1_790_000_000_000) -> None:
        self._wall_ms = start_ms
        self._mono = 1000.0

    def time_ms(self) -> int:
        return self._wall_ms

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall_ms += int(seconds * 1000)
        self._mono += seconds

    def set_time_ms(self, wall_ms: int) -> None:
        """Set the wall clock (back or forth, as NTP or an RTC-less boot does); monotonic time stays."""
        self._wall_ms = wall_ms
