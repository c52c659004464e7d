"""Replay and expiry guard for commands: a command is executed at most once, and only while fresh,
whatever the gateway's clock did in between.

The contract (README "Replay contract"), checked in this order for a command of sender S:
1. `clock_unset`: the wall clock reads before 2025 (a Pi without RTC before NTP): nothing is fresh.
2. `clock_unsynced`: the system reports the clock as not synchronised (`gateway.core.timesync`).
3. `clock_behind`: the clock reads more than `max_skew_s` earlier than S's high-water mark, the
   latest `ts_ms` ever accepted from S (persisted). The clock went back: until it catches up,
   freshness cannot be judged against it.
4. `expired`: `ts_ms` older than `max_age_s`, past its own `expires_ms`, or older than S's floor
   (below which S's nonces may have been forgotten; see 6).
5. `clock_skew`: dated more than `max_skew_s` ahead. 6. `replayed`: nonce already used.
On acceptance the nonce and S's mark are saved to the state store before the handler runs.

Nonces are forgotten only relative to the sender's mark, never to the current clock: a nonce of S
dated T is dropped once S's mark passes T + max_age_s + max_skew_s, and S's floor is raised to that
horizon first (durably), so a forgotten nonce's command is refused as `expired` whatever the clock
and whatever `max_age_s` later becomes. Setting the clock back therefore cannot reopen the window.

The router checks freshness only after the signature and the roles: an unverified sender cannot
spend nonces or move a mark, nor grow the table (which holds what verified keys sent in the window).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from gateway.commands.envelope import Command
from gateway.commands.refusals import Code, Refusal
from gateway.core.clock import clock_is_set
from gateway.core.timesync import ClockSync, KernelClockSync
from gateway.storage.state import StateStore

NS = "command_nonce"  # nonce -> [ts_ms, sender]  (rows of older versions: nonce -> ts_ms)
MARKS_NS = "command_mark"  # sender -> {"mark": latest accepted ts_ms, "floor": oldest ts_ms judged}
LEGACY = ""  # the sender of nonce rows saved before marks existed


@dataclass(slots=True)
class _Mark:
    mark: int
    floor: int

    def row(self) -> dict[str, int]:
        return {"mark": self.mark, "floor": self.floor}


class ReplayGuard:
    def __init__(
        self,
        store: StateStore | None,
        max_age_s: float,
        max_skew_s: float,
        sync: ClockSync | None = None,
    ) -> None:
        self.store = store
        self.max_age_ms = int(max_age_s * 1000)
        self.max_skew_ms = int(max_skew_s * 1000)
        self.sync: ClockSync = sync if sync is not None else KernelClockSync()
        self.seen: dict[str, tuple[int, str]] = {}
        self.marks: dict[str, _Mark] = {}
        # Per sender, oldest first, so pruning costs O(log n) per command, not a scan of the window.
        self._by_age: dict[str, list[tuple[int, str]]] = {}
        if store is not None:
            self._load(store)

    def _load(self, store: StateStore) -> None:
        for sender, row in store.load(MARKS_NS).items():
            try:
                self.marks[sender] = _Mark(int(row["mark"]), int(row["floor"]))
            except (TypeError, KeyError, ValueError):
                continue  # a damaged row: that sender starts without a mark (nonces still held)
        for nonce, value in store.load(NS).items():
            ts, sender = _nonce_row(value)
            if ts is not None:
                self.seen[nonce] = (ts, sender)
                self._by_age.setdefault(sender, []).append((ts, nonce))
        for heap in self._by_age.values():
            heapq.heapify(heap)

    def check(
        self, cmd: Command, now_ms: int, sender: str = LEGACY, *, local: bool = False
    ) -> Refusal | None:
        """None if fresh (and remembers its nonce and the sender's mark); otherwise the refusal.

        `local` (the control socket, authorised by its file permissions and dated by this host's own
        clock) skips the checks that guard against a remote replay across clock changes (2, 3 and
        the floor), so a technician on site can still act while the clock is being fixed: whoever
        can write to the socket can issue commands and needs no replay."""
        if not clock_is_set(now_ms):
            return Refusal(Code.CLOCK_UNSET, "gateway clock not set: fresh cannot be told from replayed")
        if not local and not self.sync.synchronized():
            return Refusal(
                Code.CLOCK_UNSYNCED,
                "the gateway's clock is not synchronised by a time server (timedatectl: "
                "System clock synchronized: no): fresh cannot be told from replayed",
            )
        held = self.marks.get(sender)
        if held is not None and not local and now_ms < held.mark - self.max_skew_ms:
            behind_s = (held.mark - now_ms) / 1000
            return Refusal(
                Code.CLOCK_BEHIND,
                f"the gateway's clock reads {behind_s:.0f} s earlier than a command already accepted "
                "from this sender: refused until the clock catches up",
            )
        if cmd.ts_ms < now_ms - self.max_age_ms:
            age_s = (now_ms - cmd.ts_ms) / 1000
            return Refusal(Code.EXPIRED, f"issued {age_s:.0f} s ago (limit {self.max_age_ms / 1000:g} s)")
        floor = max((m.floor for m in (held, self.marks.get(LEGACY)) if m is not None), default=None)
        if floor is not None and not local and cmd.ts_ms < floor:
            return Refusal(Code.EXPIRED, "older than commands that later ones have retired")
        if cmd.ts_ms > now_ms + self.max_skew_ms:
            ahead_s = (cmd.ts_ms - now_ms) / 1000
            return Refusal(Code.CLOCK_SKEW, f"issued {ahead_s:.0f} s in the future: check the sender's clock")
        if cmd.expires_ms is not None and cmd.expires_ms < now_ms:
            return Refusal(Code.EXPIRED, "past its expires_ms")
        if cmd.nonce in self.seen:
            return Refusal(Code.REPLAYED, "nonce already used")
        self._accept(cmd, sender)
        return None

    def _accept(self, cmd: Command, sender: str) -> None:
        held = self.marks.get(sender)
        mark = cmd.ts_ms if held is None else max(held.mark, cmd.ts_ms)
        horizon = mark - self.max_age_ms - self.max_skew_ms
        floor = horizon if held is None else max(held.floor, horizon)
        self.marks[sender] = _Mark(mark, floor)
        forgotten = self._forget(sender, floor)
        rows = {sender: self.marks[sender].row()}
        if sender != LEGACY and self._by_age.get(LEGACY):
            # Rows from before marks (sender unknown) retire by the latest floor of any sender, and
            # that floor then applies to every sender.
            legacy = max(m.floor for m in self.marks.values())
            self.marks[LEGACY] = _Mark(legacy, legacy)
            rows[LEGACY] = self.marks[LEGACY].row()
            forgotten += self._forget(LEGACY, legacy)
        self.seen[cmd.nonce] = (cmd.ts_ms, sender)
        heapq.heappush(self._by_age.setdefault(sender, []), (cmd.ts_ms, cmd.nonce))
        if self.store is not None:
            # The floor is on disk before any nonce below it is deleted (see the module docstring).
            self.store.save(MARKS_NS, rows)
            self.store.save(NS, {cmd.nonce: [cmd.ts_ms, sender]}, forgotten)

    def _forget(self, sender: str, floor: int) -> list[str]:
        heap = self._by_age.get(sender, [])
        old: list[str] = []
        while heap and heap[0][0] < floor:
            _, nonce = heapq.heappop(heap)
            if self.seen.pop(nonce, None) is not None:
                old.append(nonce)
        return old


def _nonce_row(value: Any) -> tuple[int | None, str]:
    if isinstance(value, int):
        return value, LEGACY
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and isinstance(value[1], str)
    ):
        return value[0], value[1]
    return None, LEGACY
