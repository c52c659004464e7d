"""Exponential backoff with full jitter (delay drawn uniformly from [0, cap]).

Full jitter keeps a building's gateways from reconnecting in lock-step after a broker restart.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self,
        initial_s: float = 1.0,
        max_s: float = 60.0,
        multiplier: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial_s <= 0 or max_s < initial_s or multiplier < 1:
            raise ValueError("need 0 < initial_s <= max_s and multiplier >= 1")
        self.initial_s = initial_s
        self.max_s = max_s
        self.multiplier = multiplier
        self.attempt = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self.max_s, self.initial_s * self.multiplier**self.attempt)

    def next_delay(self) -> float:
        """The delay before the next attempt; each call widens the window up to `max_s`."""
        cap = self.ceiling()
        self.attempt += 1
        return self._rng.uniform(0, cap)

    def reset(self) -> None:
        self.attempt = 0
