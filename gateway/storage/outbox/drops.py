"""Counting what the outbox drops, by class and reason, persistently.

Counts are records (readings or events), not messages. Drops made inside a transaction (evicting
for space) count only once that transaction commits: a rolled-back eviction dropped nothing.
The counters live in the outbox's `meta` table as `drop.<class>.<reason>` and survive restarts.

Beside them, `native_seqs_dropped` counts the native messages deleted before their PUBACK
(evicted, expired, corrupt): the holes a receiver sees in the native `seq`, and the only ones
(bridge rows have no native seq; a record dropped before it was numbered leaves none). A message
evicted while in flight may still arrive: the count is never below the holes, equal otherwise.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

from gateway.core import Klass

log = logging.getLogger("lintel.outbox")

NATIVE_KEY = "native_seqs_dropped"


class DropCounter:
    def __init__(self, meta: dict[str, int]) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[Klass, str], int] = defaultdict(int)
        self._staged: dict[tuple[Klass, str], int] = defaultdict(int)
        self._unsaved: set[tuple[Klass, str]] = set()
        self.native_seqs = meta.get(NATIVE_KEY, 0)
        self._staged_native = 0
        for key, value in meta.items():
            if key.startswith("drop."):
                _, klass_name, reason = key.split(".", 2)
                self._counts[(Klass.parse(klass_name), reason)] = value

    def count(self, klass: Klass, reason: str, records: int, *, in_txn: bool = False) -> None:
        """Count dropped records; with in_txn, only once settle(committed=True) is called."""
        if records <= 0:
            return
        key = (klass, reason)
        with self._lock:
            if in_txn:
                self._staged[key] += records
            else:
                self._add(key, records)

    def count_native(self, messages: int, *, in_txn: bool = False) -> None:
        """Count native messages deleted unsent (each a hole in the native seq)."""
        if messages <= 0:
            return
        with self._lock:
            if in_txn:
                self._staged_native += messages
            else:
                self.native_seqs += messages

    def _add(self, key: tuple[Klass, str], records: int) -> None:
        if self._counts[key] == 0:
            log.warning("outbox: dropping %s records (%s); counted in stats", key[0].label, key[1])
        self._counts[key] += records
        self._unsaved.add(key)

    def meta_values(self) -> dict[str, int]:
        """The `meta` rows to write in the current transaction (its staged drops included)."""
        with self._lock:
            keys = self._unsaved | set(self._staged)
            values = {
                f"drop.{k.label}.{reason}": self._counts[(k, reason)] + self._staged.get((k, reason), 0)
                for k, reason in keys
            }
            values[NATIVE_KEY] = self.native_seqs + self._staged_native
            return values

    def settle(self, committed: bool) -> None:
        """The transaction ended: keep its staged drops if it committed, forget them if not."""
        with self._lock:
            if committed:
                for key, n in self._staged.items():
                    self._add(key, n)
                self._unsaved.clear()
                self.native_seqs += self._staged_native
            self._staged.clear()
            self._staged_native = 0

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f"{k.label}.{reason}": n for (k, reason), n in sorted(self._counts.items()) if n}
