"""The replay guard of one encrypted sensor: which frame counters are fresh, and when a counter
that went back is a real restart of the device rather than a replay.

An encrypted advert carries a frame counter the sensor increases with every transmission, covered
by the AES-CCM tag: nobody without the key can change it. An advert whose counter is not above the
highest one accepted (`high`) is old: a recording played back. `high` is kept in state.db by the
source, so a gateway restart does not reopen the door to replays.

A sensor whose battery is changed (or that is reset) starts counting again from zero, which looks
exactly like a replay of its first adverts. A restart is accepted only on evidence a replay of
recorded adverts cannot produce cheaply (`RestartPolicy`):

- the new sequence starts low (at most `max_start`): recordings of a sensor in service carry high
  counters; low ones exist only from the first days after its install or last battery change;
- it keeps increasing, at a pace a device can transmit (at most `max_rate_per_s` counts per second
  between adverts), for at least `probation_s` of wall time and `min_adverts` adverts;
- and the old sequence stays silent meanwhile: one authentic advert above `high` proves the device
  is alive and counting, so the low sequence is a replay and is dropped.

The trade-off, in the README: for `probation_s` after a genuine battery change nothing the sensor
says is applied; an attacker who recorded at least `probation_s` of the sensor's first adverts
after its install or battery change, and silences the real sensor (jamming) for as long, can still
have a restart accepted, which is reported upstream as `sensor_counter_reset`.

Pure logic, driven with the receiver's monotonic time; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When a counter that went back is accepted as a restart of the device (see the module)."""

    probation_s: float = 600.0
    min_adverts: int = 3
    max_start: int = 4096
    max_rate_per_s: float = 20.0


class Verdict(Enum):
    FRESH = "fresh"  # above everything seen: apply
    OLD = "old"  # at or below `high`: a replay (or a restart still on probation); drop
    RESTART = "restart"  # a restart proven by its probation: apply, and report it


@dataclass(slots=True)
class _Candidate:
    """A low counter sequence on probation as a possible restart of the device."""

    first: int
    last: int
    started: float
    last_at: float
    adverts: int = 1


class ReplayGuard:
    """Counter bookkeeping of one sensor. `high` is None until the first authentic advert (or the
    value restored from state.db); `changed` says `high` moved since the caller last saved it."""

    def __init__(self, policy: RestartPolicy | None = None, high: int | None = None) -> None:
        self.policy = policy or RestartPolicy()
        self.high = high
        self.previous: int | None = None  # `high` before the last accepted restart
        self.changed = False
        self.refuted = 0  # restart candidates dropped because the old sequence went on
        self._candidate: _Candidate | None = None

    @property
    def on_probation(self) -> bool:
        return self._candidate is not None

    def check(self, counter: int, now: float) -> Verdict:
        """The verdict on an authentic advert's counter received at monotonic time `now`."""
        if self.high is None or counter > self.high:
            if self._candidate is not None:
                self._candidate = None  # the device is alive and counting: the low run was a replay
                self.refuted += 1
            self.high = counter
            self.changed = True
            return Verdict.FRESH
        candidate = self._candidate
        if candidate is not None and counter == candidate.last:
            return Verdict.OLD  # the same transmission again: neither progress nor a contradiction
        if candidate is None or counter < candidate.last or not self._plausible(candidate, counter, now):
            # Not a continuation: perhaps the start of a restart (if low), else plainly old.
            low = counter < self.high and counter <= self.policy.max_start
            self._candidate = _Candidate(counter, counter, now, now) if low else None
            return Verdict.OLD
        candidate.last, candidate.last_at = counter, now
        candidate.adverts += 1
        if now - candidate.started < self.policy.probation_s or candidate.adverts < self.policy.min_adverts:
            return Verdict.OLD
        self.previous, self.high = self.high, counter
        self.changed = True
        self._candidate = None
        return Verdict.RESTART

    def _plausible(self, candidate: _Candidate, counter: int, now: float) -> bool:
        # A device cannot have transmitted more frames than time allowed (a replay compressing a
        # long recording into a short burst fails this).
        return counter - candidate.last <= 1 + (now - candidate.last_at) * self.policy.max_rate_per_s
