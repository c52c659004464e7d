"""A log of every row the outbox ever held, for tests with bridges on.

Rows are deleted once acknowledged, so "which bridge rows were there" cannot be read back after
the fact. Triggers in the outbox file itself (they fire in the daemon's own transactions, so a
commit a kill -9 rolled back leaves no entry) keep (row seq, topic) of every row inserted.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.storage.outbox import OutboxStore
from gateway.storage.outbox.schema import TABLES


def install(db: Path) -> None:
    """Create the outbox (schema of this version) with the logging triggers in it."""
    OutboxStore(db).close(clean=True)
    conn = sqlite3.connect(db)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS test_row_log (seq INTEGER PRIMARY KEY, topic TEXT)")
        for table in TABLES.values():
            conn.execute(
                f"CREATE TRIGGER IF NOT EXISTS test_log_{table} AFTER INSERT ON {table} "
                "BEGIN INSERT OR REPLACE INTO test_row_log VALUES (NEW.seq, NEW.topic); END"
            )
        conn.commit()
    finally:
        conn.close()


def rows(db: Path) -> dict[int, str]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT seq, topic FROM test_row_log"))
    finally:
        conn.close()


def is_bridge_topic(topic: str) -> bool:
    return topic.startswith(("homeassistant/", "spBv1.0/")) or "/ha/" in topic
