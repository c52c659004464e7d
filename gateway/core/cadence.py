"""A fixed cadence for a loop that works, then waits: ticks `interval_s` apart whatever the work
took, so "5 frames a second" stays 5 while each frame's analysis takes 50 ms (sleeping
`interval_s` after the work gave ~4.1 a second). A tick whose work overran starts the next one at
once and the cadence continues from there: never a burst of ticks to catch up.

Pure arithmetic on the caller's clock (the event loop's `time()` for a real `asyncio.sleep`).
"""

from __future__ import annotations


class Cadence:
    def __init__(self, interval_s: float, now: float) -> None:
        self.interval_s = interval_s
        self.next_s = now + interval_s

    def wait(self, now: float) -> float:
        """Seconds to sleep before the next tick (0 when it is due or overdue); the tick after it
        is scheduled `interval_s` later."""
        tick = max(self.next_s, now)
        self.next_s = tick + self.interval_s
        return tick - now
