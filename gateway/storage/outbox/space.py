"""The outbox's space policy, applied inside the writer's transactions.

Over a class cap, that class's oldest messages go; over the total cap, the oldest of the lowest class
go first (telemetry, then state, then event); alarms are never evicted for space. Messages older
than their class's age limit expire. Every eviction is counted in the DropCounter, staged until
the transaction commits: records under the reason, Sparkplug bridge rows (which carry no records:
their readings are counted with the native rows) as rows under `sparkplug_<reason>`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from gateway.core import Klass
from gateway.core.clock import SANE_EPOCH_MS
from gateway.storage.outbox.drops import DropCounter
from gateway.storage.outbox.store import TABLES

# Messages stamped before the clock was set (SANE_EPOCH_MS) have an unknown age and are never
# expired by age (they still count against the byte caps): a clock that jumps forward after an
# outage must not throw away everything buffered during it.

# The Sparkplug bridge's topics (its rows carry no records; gateway/delivery/queues.py reads them).
SPARKPLUG_PREFIX = "spBv1.0/"

Totals = dict[Klass, list[int]]  # class -> [rows, bytes]; shared with the writer, updated in place


class SpaceKeeper:
    def __init__(
        self,
        conn: sqlite3.Connection,
        totals: Totals,
        drops: DropCounter,
        class_max_bytes: Mapping[Klass, int | None],
        max_bytes: int,
        class_max_age_ms: Mapping[Klass, int],
    ) -> None:
        self.conn = conn
        self.totals = totals
        self.drops = drops
        self.class_max_bytes = class_max_bytes
        self.max_bytes = max_bytes
        self.class_max_age_ms = class_max_age_ms

    def drop_oldest(
        self, klass: Klass, need_bytes: int | None, older_than_ms: int | None, reason: str
    ) -> int:
        """Delete the oldest messages of one class until `need_bytes` are freed or the rows are no
        longer older than `older_than_ms`. Returns the bytes freed."""
        table = TABLES[klass]
        freed = 0
        while True:
            # Sparkplug rows (held while its primary host is offline) carry no records: they are
            # counted as rows under their own reason, `sparkplug_<reason>` (issue 27)
            batch = self.conn.execute(
                f"SELECT seq, LENGTH(payload) + LENGTH(topic), records, created_ms, "
                f"substr(topic, 1, {len(SPARKPLUG_PREFIX)}) = ? FROM {table} ORDER BY seq LIMIT 500",
                (SPARKPLUG_PREFIX,),
            ).fetchall()
            upto = None
            rows = records = batch_bytes = bridge_rows = 0
            for seq, size, n, created, sparkplug in batch:
                if need_bytes is not None and freed + batch_bytes >= need_bytes:
                    break
                if older_than_ms is not None and (created >= older_than_ms or created < SANE_EPOCH_MS):
                    break
                upto, rows, records, batch_bytes = seq, rows + 1, records + n, batch_bytes + size
                bridge_rows += bool(sparkplug)
            if upto is None:
                return freed
            self.conn.execute(f"DELETE FROM {table} WHERE seq <= ?", (upto,))
            freed += batch_bytes
            self.totals[klass][0] -= rows
            self.totals[klass][1] -= batch_bytes
            self.drops.count(klass, reason, records, in_txn=True)
            self.drops.count(klass, f"sparkplug_{reason}", bridge_rows, in_txn=True)
            if rows < len(batch):
                return freed

    def evict_lowest(self, need_bytes: int, reason: str) -> int:
        """Free `need_bytes` from the lowest classes first, never from alarms."""
        freed = 0
        for klass in sorted(Klass):
            if klass == Klass.ALARM or freed >= need_bytes:
                break
            freed += self.drop_oldest(klass, need_bytes - freed, None, reason)
        return freed

    def enforce_caps(self) -> None:
        for klass in Klass:
            cap = self.class_max_bytes.get(klass)
            if cap is not None and self.totals[klass][1] > cap:
                self.drop_oldest(klass, self.totals[klass][1] - cap, None, "class_full")
        over = sum(t[1] for t in self.totals.values()) - self.max_bytes
        if over > 0:
            self.evict_lowest(over, "outbox_full")

    def expire(self, now_ms: int) -> None:
        if now_ms < SANE_EPOCH_MS:
            return  # the clock is not set: no age can be known
        for klass, max_age_ms in self.class_max_age_ms.items():
            self.drop_oldest(klass, None, now_ms - max_age_ms, "expired")
