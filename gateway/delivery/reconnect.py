"""When the uplink tries the broker again.

Exponential backoff with full jitter (each delay uniform in [0, ceiling], the ceiling doubling from
`initial_s` up to `max_s`). Two rules make a returning broker reached promptly:

- The ceiling is low (`max_s`, 5 s by default): however long the outage, the gateway is back within
  `max_s` (plus one connect) of the broker's return. A long outage no longer means a long wait; the
  price is one refused TCP connect every `max_s / 2` s on average while the broker is away.
- The attempt count resets after a connection that held `stable_after_s`, measured on the monotonic
  clock (NTP stepping the wall clock at boot must not fake a long connection). A broker that accepts
  and drops at once keeps the gateway at the ceiling instead of in a tight loop.

Full jitter is what spreads a fleet: gateways that lost the broker together retry at independent
random moments, so a returning broker sees its fleet spread over `max_s` (bench/reconnect.py prints
that spread for 200 gateways).
"""

from __future__ import annotations

import random

from gateway.core import Backoff, Clock


class ReconnectPolicy:
    """Not thread-safe: owned by the uplink thread."""

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        stable_after_s: float,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.stable_after_s = stable_after_s
        self.clock = clock
        self.backoff = Backoff(initial_s, max_s, rng=rng)
        self._up_since: float | None = None
        self.resets = 0

    def connected(self) -> None:
        """The broker accepted a connection (CONNACK success)."""
        self._up_since = self.clock.monotonic()

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt, after a failed attempt or a lost connection."""
        if self._up_since is not None:
            if self.clock.monotonic() - self._up_since >= self.stable_after_s:
                self.backoff.reset()
                self.resets += 1
            self._up_since = None
        return self.backoff.next_delay()

    @property
    def ceiling_s(self) -> float:
        """The upper bound of the next delay."""
        return self.backoff.ceiling()
