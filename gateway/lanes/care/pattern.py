"""The usual daily pattern of a household, learned per hour of day (a heuristic, labelled as such).

Activity is counted in *active minutes*: a minute with at least one activity mark (door, water,
electricity above standby) counts once, whatever the signal and however many marks. Per local
day, 24 counters. The baseline at a given hour is the mean, over the learned days, of the active
minutes from the start of the day window to that hour; today is "far below" when its own count is
under `ratio` × baseline. Days the gateway did not watch in full are not learned from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PatternVerdict:
    expected_active_min: float
    actual_active_min: int
    days_learned: int
    below: bool


class DayPattern:
    """Hourly active-minute counters of past days and of today."""

    def __init__(self, days: dict[int, list[int]] | None = None) -> None:
        self.days: dict[int, list[int]] = days or {}
        self.last_minute = -1

    def mark(self, day: int, hour: int, minute_index: int) -> bool:
        """Count an activity mark; True if it opened a new active minute (the day row changed)."""
        if minute_index == self.last_minute:
            return False
        self.last_minute = minute_index
        row = self.days.get(day)
        if row is None:
            row = self.days[day] = [0] * 24
        row[hour] += 1
        return True

    def ensure_day(self, day: int) -> None:
        """Record that `day` was watched (a day without any activity is data too)."""
        self.days.setdefault(day, [0] * 24)

    def prune(self, today: int, keep_days: int) -> list[int]:
        """Forget days older than `keep_days` before today; returns the dropped days."""
        old = [d for d in self.days if d < today - keep_days]
        for d in old:
            del self.days[d]
        return old

    def verdict(
        self, today: int, first_hour: int, until_hour: int, learned_days: set[int], ratio: float
    ) -> PatternVerdict:
        """Today's active minutes in hours [first_hour, until_hour) against the learned days'."""
        hours = _hours(first_hour, until_hour)
        totals = [sum(self.days[d][h] for h in hours) for d in sorted(learned_days) if d in self.days]
        today_row = self.days.get(today, [0] * 24)
        actual = sum(today_row[h] for h in hours)
        if not totals:
            return PatternVerdict(0.0, actual, 0, False)
        expected = sum(totals) / len(totals)
        return PatternVerdict(round(expected, 1), actual, len(totals), actual < ratio * expected)


def _hours(first_hour: int, until_hour: int) -> list[int]:
    if until_hour >= first_hour:
        return list(range(first_hour, until_hour))
    return list(range(first_hour, 24)) + list(range(until_hour))
