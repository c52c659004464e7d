"""Counter awareness: cumulative registers (kWh, m³) that must never corrupt consumption figures.

Consumption upstream is the difference of successive counter values. Two things break that:
- the value goes backwards (the meter was replaced or reset): the new value is published, and a
  `counter_reset` event marks where the series restarts so receivers do not subtract across it;
- the value jumps faster than physically possible (a misread, a swapped word, a replaced meter with
  a higher reading): the value is withheld and an `implausible_jump` event is raised. If the next
  `confirm_after` readings agree with the new level, it is accepted as a new baseline with a
  `counter_reset` (reason `rebased`), so a genuinely replaced meter is not withheld forever.
"""

from __future__ import annotations

from dataclasses import dataclass

# Meters round counters to their display resolution; a backwards step within this much is noise.
_BACKWARDS_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class Verdict:
    publish: bool
    event: str | None = None  # "counter_reset" | "implausible_jump"
    attrs: dict[str, object] | None = None


class CounterGuard:
    def __init__(self, max_rate_per_h: float | None, *, confirm_after: int = 3, slack: float = 0.01) -> None:
        self.max_rate_per_h = max_rate_per_h
        self.confirm_after = confirm_after
        self.slack = slack  # absolute allowance on top of the rate: display rounding, one tick
        self.last: float | None = None
        self.last_ts_ms = 0
        self._candidate: float | None = None
        self._candidate_ts_ms = 0
        self._agreeing = 0

    def _plausible(self, old: float, old_ts: int, new: float, new_ts: int) -> bool:
        if self.max_rate_per_h is None:
            return True
        hours = max(new_ts - old_ts, 0) / 3_600_000
        return new - old <= self.max_rate_per_h * hours + self.slack

    def check(self, value: float, ts_ms: int) -> Verdict:
        last = self.last
        if last is None:
            self._accept(value, ts_ms)
            return Verdict(True)
        if value < last - _BACKWARDS_TOLERANCE:
            self._accept(value, ts_ms)
            return Verdict(
                True, "counter_reset", {"previous": last, "value": value, "reason": "went_backwards"}
            )
        if self._plausible(last, self.last_ts_ms, value, ts_ms):
            self._accept(value, ts_ms)
            return Verdict(True)
        # Implausible against the baseline: does it agree with an earlier jump?
        candidate = self._candidate
        if (
            candidate is not None
            and candidate <= value
            and self._plausible(candidate, self._candidate_ts_ms, value, ts_ms)
        ):
            self._agreeing += 1
            self._candidate, self._candidate_ts_ms = value, ts_ms
            if self._agreeing >= self.confirm_after:
                previous = last
                self._accept(value, ts_ms)
                return Verdict(
                    True, "counter_reset", {"previous": previous, "value": value, "reason": "rebased"}
                )
            return Verdict(False)
        first_jump = candidate is None
        self._candidate, self._candidate_ts_ms, self._agreeing = value, ts_ms, 0
        if not first_jump:
            return Verdict(False)
        hours = max(ts_ms - self.last_ts_ms, 0) / 3_600_000
        return Verdict(
            False,
            "implausible_jump",
            {
                "previous": last,
                "value": value,
                "seconds": round(hours * 3600, 3),
                "max_rate_per_h": self.max_rate_per_h,
            },
        )

    def _accept(self, value: float, ts_ms: int) -> None:
        self.last, self.last_ts_ms = value, ts_ms
        self._candidate, self._agreeing = None, 0
