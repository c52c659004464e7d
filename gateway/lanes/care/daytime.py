"""Day and night in the building's local time (DST-safe), for the care watch's limits.

The day is [day_starts, night_starts) local time; if night starts before day in the clock's order
(an unusual night shift setting), the window wraps past midnight.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from gateway.core.clock import local_zone


class DayClock:
    def __init__(self, timezone: str | None, day_start_min: int, night_start_min: int) -> None:
        self.tz: dt.tzinfo = local_zone(timezone)
        self.day_start_min = day_start_min
        self.night_start_min = night_start_min
        self._windows = lru_cache(maxsize=512)(self._window_of)

    def local(self, ts_ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ts_ms / 1000, self.tz)

    def is_day(self, ts_ms: int) -> bool:
        local = self.local(ts_ms)
        minute = local.hour * 60 + local.minute
        if self.day_start_min < self.night_start_min:
            return self.day_start_min <= minute < self.night_start_min
        return minute >= self.day_start_min or minute < self.night_start_min

    def day_index(self, ts_ms: int) -> int:
        """The local calendar date as an ordinal (days since 0001-01-01)."""
        return self.local(ts_ms).date().toordinal()

    def day_start_ms(self, ordinal: int) -> int:
        """When the day window of local date `ordinal` opens."""
        return self._windows(ordinal)[0]

    def _window_of(self, ordinal: int) -> tuple[int, int]:
        date = dt.date.fromordinal(ordinal)
        start = self._at(date, self.day_start_min)
        end_date = date if self.night_start_min > self.day_start_min else date + dt.timedelta(days=1)
        end = self._at(end_date, self.night_start_min)
        return start, end

    def _at(self, date: dt.date, minute: int) -> int:
        naive = dt.datetime(date.year, date.month, date.day, minute // 60, minute % 60)
        return int(naive.replace(tzinfo=self.tz).timestamp() * 1000)

    def daytime_s(self, from_ms: int, to_ms: int) -> float:
        """Seconds of day-window time between two instants."""
        if to_ms <= from_ms:
            return 0.0
        total = 0
        first = self.day_index(from_ms) - 1
        last = self.day_index(to_ms)
        for ordinal in range(first, last + 1):
            start, end = self._windows(ordinal)
            lo, hi = max(start, from_ms), min(end, to_ms)
            if hi > lo:
                total += hi - lo
        return total / 1000
