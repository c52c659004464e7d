"""Removing the rows readers found bad (checks.py), inside the writer's transaction."""

from __future__ import annotations

import sqlite3
from collections import defaultdict

from gateway.core import Klass
from gateway.storage.outbox.checks import row_crc
from gateway.storage.outbox.drops import DropCounter
from gateway.storage.outbox.schema import TABLES


def remove_corrupt(
    cur: sqlite3.Cursor, found: list[tuple[Klass, int]], totals: dict[Klass, list[int]], drops: DropCounter
) -> tuple[int, dict[str, list[int]]]:
    """Inside the writer's transaction: delete the `found` rows that still fail their crc, each
    counted once (`<class>.corrupt`, and a native one as a hole in the native seq). Returns how many
    were removed and the native seqs among them by class label (what receivers will miss)."""
    removed: dict[str, list[int]] = defaultdict(list)
    n = 0
    for klass, seq in found:
        row = cur.execute(
            f"SELECT CAST(topic AS BLOB), payload, records, crc, LENGTH(payload) + LENGTH(topic), "
            f"native_seq FROM {TABLES[klass]} WHERE seq=?",
            (seq,),
        ).fetchone()
        if row is None:
            continue  # acknowledged or evicted meanwhile
        topic, payload, records, crc, size, native_seq = row
        if crc is None or (
            isinstance(records, int) and row_crc(int(klass), seq, records, topic, payload) == crc
        ):
            continue  # it reads well now: a reader's transient error, keep it
        cur.execute(f"DELETE FROM {TABLES[klass]} WHERE seq=?", (seq,))
        totals[klass][0] -= 1
        totals[klass][1] -= size or 0
        drops.count(klass, "corrupt", 1, in_txn=True)
        n += 1
        if isinstance(native_seq, int):
            drops.count_native(1, in_txn=True)
            removed[klass.label].append(native_seq)
    return n, dict(removed)
