"""Replay counters of keyed sensors, kept across restarts in the context's `KeyValueStore`.

The daemon's store is state.db: namespace `ble.counters`, one row per sensor address holding the
highest accepted counter and a fingerprint of the key it belongs to (a sensor re-paired with a new
key starts afresh; the fingerprint does not reveal the key).

Writes are few, on the event loop: a counter that moved is saved
- soon (when the source's queue is drained) after an advert that changed something: a state, an
  event. Those are the adverts worth replaying, so they are refused after any restart;
- otherwise at most every `PERSIST_INTERVAL_S` (heartbeats), and at every stop.
After a crash (no stop), only heartbeats newer than the saved counter can be replayed, once each,
and they restate the state of their moment: true unless the door changed while the gateway was
down, and corrected by the sensor's next advert. The interval trades that window against writes
(SD cards wear): 20 keyed sensors with a heartbeat a minute cost one write per 15 s, not 3 per s.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass

from drivers.ble.replay import ReplayGuard, RestartPolicy
from gateway.core import KeyValueStore

log = logging.getLogger("lintel.ble")

PERSIST_NS = "ble.counters"
PERSIST_INTERVAL_S = 300.0
_MAX_COUNTER = 0xFFFF_FFFF


def key_fingerprint(key: bytes) -> str:
    """Names the key a stored counter belongs to, without revealing it."""
    return hashlib.sha256(b"lintel ble counter\0" + key).hexdigest()[:16]


@dataclass(slots=True)
class _Row:
    guard: ReplayGuard
    fingerprint: str
    saved_at: float = float("-inf")
    urgent: bool = False


class ReplayCounters:
    """The guards of one source's keyed sensors and their persistence. Never raises on store faults:
    they are counted (`persist_failed`) and logged once per episode, and retried."""

    def __init__(self, store: KeyValueStore, source_id: str, namespace: str = PERSIST_NS) -> None:
        self.store = store
        self.source_id = source_id
        self.namespace = namespace  # residents' tags keep theirs apart (drivers/ble/tags.py)
        self.counts: Counter[str] = Counter()
        self._rows: dict[str, _Row] = {}
        self._pending: set[str] = set()
        self._failing = False

    def guard(self, address: str, key: bytes, policy: RestartPolicy) -> ReplayGuard:
        """A guard for a keyed sensor, starting from its stored counter when there is one."""
        fingerprint = key_fingerprint(key)
        guard = ReplayGuard(policy, self._stored(address, fingerprint))
        self._rows[address] = _Row(guard, fingerprint)
        return guard

    def touched(self, address: str, *, urgent: bool) -> None:
        """An advert of `address` was handled; `urgent` when it changed something upstream."""
        row = self._rows.get(address)
        if row is not None and row.guard.changed:
            self._pending.add(address)
            row.urgent = row.urgent or urgent

    def flush(self, now: float, *, force: bool = False) -> None:
        """Save the counters that are due (urgent, or older than the interval; all when `force`)."""
        for address in list(self._pending):
            row = self._rows[address]
            if not (force or row.urgent or now - row.saved_at >= PERSIST_INTERVAL_S):
                continue
            if not self._put(address, {"counter": row.guard.high, "key": row.fingerprint}):
                return  # the store is failing: keep everything pending, try again later
            row.guard.changed, row.urgent, row.saved_at = False, False, now
            self._pending.discard(address)

    def _put(self, address: str, value: dict[str, object]) -> bool:
        try:
            self.store.put(self.namespace, address, value)
        except Exception as exc:  # a full disk must not stop the door sensors
            self.counts["persist_failed"] += 1
            if not self._failing:
                self._failing = True
                log.error("%s: cannot save replay counters: %s", self.source_id, exc)
            return False
        if self._failing:
            self._failing = False
            log.info("%s: replay counters saved again", self.source_id)
        self.counts["persisted"] += 1
        return True

    def _stored(self, address: str, fingerprint: str) -> int | None:
        try:
            row = self.store.get(self.namespace, address)
        except Exception as exc:  # any store fault: run unprotected across restarts, but say so
            log.error("%s: cannot read the replay counter of %s: %s", self.source_id, address, exc)
            return None
        if not isinstance(row, dict) or row.get("key") != fingerprint:
            return None  # none yet, or it belongs to another key (the sensor was re-paired)
        counter = row.get("counter")
        if isinstance(counter, int) and not isinstance(counter, bool) and 0 <= counter <= _MAX_COUNTER:
            return counter
        log.warning("%s: ignoring an unreadable stored replay counter for %s", self.source_id, address)
        return None
