"""Durable state of processors (open alarms, care timers, rule timers, command nonces).

One small SQLite file beside the outbox (`<state_dir>/state.db`), WAL mode, a row per
(namespace, key) holding compact JSON. It is written on the event loop, so writes are few and
small by design: callers save only what changed, and timers that move on every reading (last
activity) are saved on an interval, not per reading. `synchronous=NORMAL` in WAL mode keeps every
committed write across a process crash; a power cut may lose the last interval, which callers
accept (alarms themselves are in the outbox, fully synced, before their state row is written).

A full or failing disk never raises into a caller: a write that fails is kept in memory (the
latest value per key wins) and retried with the next write or `flush()`, counted in
`failed_writes`, and logged once per episode. The callers' logic (an alarm opened, a timer started)
goes on, and what they decided reaches the pipeline even when its state row could not be saved yet.

Opening on a full disk falls back to SQLite's exclusive locking mode, which needs no `-shm` file
(then only this process can read the file until the next start).

Only the daemon writes. The CLI reads (`lintel alarms list` without a daemon) through a read-only
connection.

The file's format version is its `PRAGMA user_version` (`FORMAT`; 0: a file from before versions,
the same layout). A release migrates it only when it is not on probation (`gateway.releases.formats`);
a file of a newer format is never opened (FormatError, naming the fix).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gateway.releases.formats import MIGRATE, Format, FormatGate

log = logging.getLogger("lintel.state")

# 1: stamped (`user_version`); 0 is the same layout, unstamped. Runs on both.
FORMAT = Format("state", 1, runs_on=0)

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

    def __init__(self, path: Path, *, read_only: bool = False, gate: FormatGate | None = None) -> None:
        """`gate`: whether this release may migrate the file (not on probation); default: from the
        update state beside the file. FormatError for a file of a newer format (left untouched)."""
        self.path = path
        self.read_only = read_only
        gate = gate or FormatGate.at(path.parent)
        if read_only:
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            try:
                gate.check(FORMAT, _version(self.conn), path)
            except BaseException:
                self.conn.close()
                raise
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.conn = self._open(path, exclusive=False, gate=gate)
            except sqlite3.OperationalError as exc:
                if not _is_full(exc):
                    raise
                log.error("state: the disk is full (%s): opened in exclusive mode until restart", exc)
                self.conn = self._open(path, exclusive=True, gate=gate)
        self.bytes_written = 0
        self.writes = 0
        self.failed_writes = 0
        # rows not yet on disk: (ns, key) -> encoded value, or None for a deletion
        self._unsaved: dict[tuple[str, str], str | None] = {}
        self._ok_since_failure = True

    @staticmethod
    def _open(path: Path, exclusive: bool, gate: FormatGate) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            if exclusive:
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")  # before any access: no -shm file
            new = not conn.execute("SELECT 1 FROM sqlite_master WHERE name='state'").fetchone()
            found = _version(conn)
            stamp: int | None = gate.writes(FORMAT) if new else FORMAT.current
            if not new and gate.check(FORMAT, found, path) != MIGRATE:
                stamp = None  # current, or older and on probation: nothing is written
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.executescript(SCHEMA)
                if stamp is not None and stamp != found:
                    conn.execute(f"PRAGMA user_version={int(stamp)}")
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

    @property
    def disk_full(self) -> bool:
        """True while writes fail (rows are held in memory)."""
        return not self._ok_since_failure

    @property
    def unsaved(self) -> dict[tuple[str, str], str | None]:
        """Rows held in memory until the disk takes them: (ns, key) -> JSON, None for a deletion."""
        return dict(self._unsaved)

    def _load_file(self, ns: str) -> dict[str, Any]:
        """Every row of a namespace on disk, decoded. Rows that do not decode are skipped."""
        out: dict[str, Any] = {}
        for key, value in self.conn.execute("SELECT key, value FROM state WHERE ns = ?", (ns,)):
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                continue
        return out

    def save(self, ns: str, rows: Mapping[str, Any], deleted: Iterable[str] = ()) -> None:
        """Upsert `rows` and delete `deleted` keys of a namespace in one transaction; never raises
        for a disk problem (see the module docstring)."""
        for key, value in rows.items():
            self._unsaved[(ns, key)] = _dumps(value)
        for key in deleted:
            self._unsaved[(ns, key)] = None
        self.flush()

    def flush(self) -> bool:
        """Write what is not on disk yet; True when nothing is left unsaved."""
        if not self._unsaved:
            return True
        pending = dict(self._unsaved)
        upserts = [(ns, key, value) for (ns, key), value in pending.items() if value is not None]
        deletes = [(ns, key) for (ns, key), value in pending.items() if value is None]
        try:
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?)", upserts)
                self.conn.executemany("DELETE FROM state WHERE ns = ? AND key = ?", deletes)
        except sqlite3.Error as exc:
            self.failed_writes += 1
            if self.failed_writes == 1 or self._ok_since_failure:
                log.error("state not saved (%s): kept in memory, retried with the next write", exc)
            self._ok_since_failure = False
            return False
        for item, value in pending.items():
            if self._unsaved.get(item, value) == value:
                self._unsaved.pop(item, None)
        if not self._ok_since_failure:
            log.info("state saved again (%d rows were held in memory)", len(pending))
            self._ok_since_failure = True
        self.writes += 1
        self.bytes_written += sum(len(v) + len(k) for _, k, v in upserts)
        return not self._unsaved

    def load(self, ns: str) -> dict[str, Any]:
        out = self._load_file(ns)
        for (row_ns, key), value in self._unsaved.items():
            if row_ns != ns:
                continue
            if value is None:
                out.pop(key, None)
            else:
                out[key] = json.loads(value)
        return out

    # -- gateway.core.KeyValueStore: one row at a time, for drivers (SourceContext.store) ---------

    def get(self, ns: str, key: str) -> Any:
        """The decoded row (ns, key), or None when there is none or it does not decode."""
        if (ns, key) in self._unsaved:  # written while the disk refused it: memory is newer
            held = self._unsaved[(ns, key)]
            return None if held is None else json.loads(held)
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
        if not self.read_only and not self.flush():
            log.error("state: %d rows could not be saved before closing", len(self._unsaved))
        self.conn.close()


def _version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def _is_full(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "full" in text or "disk i/o error" in text


def state_path(state_dir: Path) -> Path:
    return state_dir / "state.db"
