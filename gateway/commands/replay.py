"""Replay and expiry guard for commands: a command is executed at most once, and only while fresh.

A command is refused when its `ts_ms` is older than `max_age_s`, more than `max_skew_s` ahead of
the gateway's clock, past its own `expires_ms`, or when its nonce was seen within the window. Nonces
are kept only for the window (older ones would be refused as expired anyway) and saved to the
state store at each accepted command, so a restart does not reopen the window to a replay.
The router checks freshness only after the signature and the roles: an unverified sender cannot
spend nonces, nor grow the table (which holds at most what verified keys sent within the window).
While the gateway's clock is not set (a Pi without RTC before NTP), nothing can be judged fresh:
every command is refused.
"""

from __future__ import annotations

import heapq

from gateway.commands.envelope import Command
from gateway.commands.refusals import Code, Refusal
from gateway.core.clock import clock_is_set
from gateway.storage.state import StateStore

NS = "command_nonce"


class ReplayGuard:
    def __init__(self, store: StateStore | None, max_age_s: float, max_skew_s: float) -> None:
        self.store = store
        self.max_age_ms = int(max_age_s * 1000)
        self.max_skew_ms = int(max_skew_s * 1000)
        self.seen: dict[str, int] = {}
        if store is not None:
            self.seen = {k: int(v) for k, v in store.load(NS).items()}
        # Oldest first, so pruning costs O(log n) per command, not a scan of the whole window.
        self._by_age: list[tuple[int, str]] = [(ts, n) for n, ts in self.seen.items()]
        heapq.heapify(self._by_age)

    def check(self, cmd: Command, now_ms: int) -> Refusal | None:
        """None if fresh (and remembers its nonce); otherwise the refusal."""
        if not clock_is_set(now_ms):
            return Refusal(Code.CLOCK_UNSET, "gateway clock not set: fresh cannot be told from replayed")
        if cmd.ts_ms < now_ms - self.max_age_ms:
            age_s = (now_ms - cmd.ts_ms) / 1000
            return Refusal(Code.EXPIRED, f"issued {age_s:.0f} s ago (limit {self.max_age_ms / 1000:g} s)")
        if cmd.ts_ms > now_ms + self.max_skew_ms:
            ahead_s = (cmd.ts_ms - now_ms) / 1000
            return Refusal(Code.CLOCK_SKEW, f"issued {ahead_s:.0f} s in the future: check the sender's clock")
        if cmd.expires_ms is not None and cmd.expires_ms < now_ms:
            return Refusal(Code.EXPIRED, "past its expires_ms")
        if cmd.nonce in self.seen:
            return Refusal(Code.REPLAYED, "nonce already used")
        self._prune(now_ms)
        self.seen[cmd.nonce] = cmd.ts_ms
        heapq.heappush(self._by_age, (cmd.ts_ms, cmd.nonce))
        if self.store is not None:
            self.store.save(NS, {cmd.nonce: cmd.ts_ms})
        return None

    def _prune(self, now_ms: int) -> None:
        horizon = now_ms - self.max_age_ms - self.max_skew_ms
        old: list[str] = []
        while self._by_age and self._by_age[0][0] < horizon:
            _, nonce = heapq.heappop(self._by_age)
            if self.seen.pop(nonce, None) is not None:
                old.append(nonce)
        if old and self.store is not None:
            self.store.save(NS, {}, old)
