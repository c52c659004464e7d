"""Durable state of processors (open alarms, care timers, rule timers, command nonces).

One small SQLite file beside the outbox (`<state_dir>/state.db`), WAL mode, a row per
(namespace, key) holding compact JSON. It is written on the event loop, so writes are few and
small by design: callers save only what changed, and timers that move on every reading (last
activity) are saved on an interval, not per reading. `synchronous=NORMAL` in WAL mode keeps every
committed write across a process crash; a power cut may lose the last interval, which callers
accept (alarms themselves are in the outbox, fully synced, before their state row is written).

Only the daemon writes. The CLI reads (`lintel alarms list` without a daemon) through a read-only
connection.

A full disk never raises out of here (a processor that raised on a state write lost the alarm it was
raising): opening falls back to SQLite's exclusive locking mode, which needs no `-shm` file (then
only this process can read the file until the next start), and rows that cannot be written are kept
in memory, newest value per key, and written with the next save that succeeds.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("lintel.state")

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
    """Key/value rows per namespace. Not thread-safe: owned by the event loop."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        if read_only:
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.conn = self._open(path, exclusive=False)
            except sqlite3.OperationalError as exc:
                if not _is_full(exc):
                    raise
                log.error("state: the disk is full (%s): opened in exclusive mode until restart", exc)
                self.conn = self._open(path, exclusive=True)
        self.bytes_written = 0
        self.writes = 0
        # Rows a full disk kept from being written: ns -> key -> value (None: delete the key).
        self.unsaved: dict[str, dict[str, Any]] = {}
        self.disk_full = False

    @staticmethod
    def _open(path: Path, exclusive: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            if exclusive:
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")  # before any access: no -shm file
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.executescript(SCHEMA)
            except sqlite3.OperationalError as exc:
                # A full disk on a file that has the table already is fine for reading.
                if (
                    not _is_full(exc)
                    or not conn.execute("SELECT 1 FROM sqlite_master WHERE name='state'").fetchone()
                ):
                    raise
        except BaseException:
            conn.close()
            raise
        return conn

    def load(self, ns: str) -> dict[str, Any]:
        """Every row of a namespace, decoded (with what is waiting in memory for a full disk).
        Rows that do not decode are skipped."""
        out: dict[str, Any] = {}
        for key, value in self.conn.execute("SELECT key, value FROM state WHERE ns = ?", (ns,)):
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                continue
        for key, value in self.unsaved.get(ns, {}).items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    def save(self, ns: str, rows: Mapping[str, Any], deleted: Iterable[str] = ()) -> None:
        """Upsert `rows` and delete `deleted` keys of a namespace in one transaction, together with
        anything an earlier full disk kept back. On a full disk the change is kept in memory
        (`unsaved`) instead of raising."""
        doomed = list(deleted)
        if not rows and not doomed and not self.unsaved:
            return
        held = self.unsaved.setdefault(ns, {})
        held.update(rows)
        held.update(dict.fromkeys(doomed))
        upserts = [
            (n, k, _dumps(v)) for n, kv in self.unsaved.items() for k, v in kv.items() if v is not None
        ]
        deletes = [(n, k) for n, kv in self.unsaved.items() for k, v in kv.items() if v is None]
        try:
            self.conn.execute("BEGIN")
            try:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO state (ns, key, value) VALUES (?, ?, ?)", upserts
                )
                self.conn.executemany("DELETE FROM state WHERE ns = ? AND key = ?", deletes)
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            if not self.disk_full:  # log the transition, not every retry
                log.error("state: cannot write (%s); rows are kept in memory until there is room", exc)
            self.disk_full = True
            return
        if self.disk_full:
            log.warning("state: the disk has room again; %d rows kept in memory are written", len(upserts))
        self.disk_full = False
        self.unsaved = {}
        self.writes += 1
        self.bytes_written += sum(len(v) + len(k) for _, k, v in upserts)

    def close(self) -> None:
        self.conn.close()


def _is_full(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "full" in text or "disk i/o error" in text


def state_path(state_dir: Path) -> Path:
    return state_dir / "state.db"
