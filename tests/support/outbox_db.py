"""Reading a test's outbox (or any SQLite file) from outside the daemon: a query, its counters,
its integrity after a kill."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Every row `sql` gives on `db`, on a connection of its own (closed after)."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(db: Path, sql: str, *params: object) -> Any:
    """The first column of the first row of `sql` (None when there is no row)."""
    rows = query(db, sql, *params)
    return rows[0][0] if rows else None


def meta(db: Path, key: str) -> int:
    """An outbox counter from its `meta` table (`last_seq`, `last_row`); 0 while the daemon has
    not created its tables yet, or has not counted anything."""
    try:
        value = scalar(db, "SELECT value FROM meta WHERE key=?", key)
    except sqlite3.OperationalError:  # the file exists, its schema not yet
        return 0
    return int(value) if value is not None else 0


def last_seq(db: Path) -> int:
    """The highest accepted native seq, 0 before the first."""
    return meta(db, "last_seq") if db.exists() else 0


def accepted_seq(db: Path) -> int:
    """`last_seq` for a test that then counts what must have arrived: an outbox without the
    counter fails here, where `last_seq`'s 0 would make "every accepted seq arrived" vacuous."""
    if not db.exists():
        raise FileNotFoundError(db)
    value = scalar(db, "SELECT value FROM meta WHERE key='last_seq'")
    if value is None:
        raise AssertionError(f"{db} has no last_seq")
    return int(value)


def assert_intact(db: Path) -> None:
    """SQLite's own integrity check passes (after a kill -9, say)."""
    assert scalar(db, "PRAGMA integrity_check") == "ok"
