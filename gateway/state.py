"""Durable state of processors (open alarms, care timers, rule timers, command nonces).

One small SQLite file beside the outbox (`<state_dir>/state.db`), WAL mode, a row per
(namespace, key) holding compact JSON. It is written on the event loop, so writes are few and
small by design: callers save only what changed, and timers that move on every reading (last
activity) are saved on an interval, not per reading. `synchronous=NORMAL` in WAL mode keeps every
committed write across a process crash; a power cut may lose the last interval, which callers
accept (alarms themselves are in the outbox, fully synced, before their state row is written).

Only the daemon writes. The CLI reads (`lintel alarms list` without a daemon) through a read-only
connection.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
"""


class StateStore:
    """Key/value rows per namespace. Not thread-safe: owned by the event loop.

    Also a `gateway.core.KeyValueStore` (`get`/`put`), so the runtime can hand it to sources as
    `SourceContext.store` (the BLE lane keeps its replay counters here).
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        if read_only:
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
        self.bytes_written = 0
        self.writes = 0

    def load(self, ns: str) -> dict[str, Any]:
        """Every row of a namespace, decoded. Rows that do not decode are skipped (and reported)."""
        out: dict[str, Any] = {}
        for key, value in self.conn.execute("SELECT key, value FROM state WHERE ns = ?", (ns,)):
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                continue
        return out

    def save(self, ns: str, rows: Mapping[str, Any], deleted: Iterable[str] = ()) -> None:
        """Upsert `rows` and delete `deleted` keys of a namespace in one transaction."""
        doomed = list(deleted)
        if not rows and not doomed:
            return
        encoded = [(ns, key, _dumps(value)) for key, value in rows.items()]
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT OR REPLACE INTO state (ns, key, value) VALUES (?, ?, ?)", encoded)
            if doomed:
                self.conn.executemany("DELETE FROM state WHERE ns = ? AND key = ?", [(ns, k) for k in doomed])
        self.writes += 1
        self.bytes_written += sum(len(v) + len(k) for _, k, v in encoded)

    # -- gateway.core.KeyValueStore: one row at a time, for drivers (SourceContext.store) ---------

    def get(self, ns: str, key: str) -> Any:
        """The decoded row (ns, key), or None when there is none or it does not decode."""
        row = self.conn.execute("SELECT value FROM state WHERE ns = ? AND key = ?", (ns, key)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except json.JSONDecodeError:
            return None

    def put(self, ns: str, key: str, value: Any) -> None:
        """Upsert one row (its own transaction)."""
        self.save(ns, {key: value})

    def close(self) -> None:
        self.conn.close()


def state_path(state_dir: Path) -> Path:
    return state_dir / "state.db"
