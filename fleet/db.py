"""PostgreSQL access: connect, apply the versioned migrations, keep reading partitions ahead.

Migrations are the plain SQL files in fleet/migrations, named `NNN_what.sql`, applied in order of
NNN, each in its own transaction together with its row in `schema_migrations`. Several workers
starting at once serialise on an advisory lock, so each file runs exactly once.
"""

from __future__ import annotations

import datetime as dt
import logging
from importlib import resources
from typing import Any

import psycopg

log = logging.getLogger("lintel.fleet.db")

MIGRATION_LOCK = 0x4C494E54  # "LINT": pg_advisory_xact_lock key for migrations and partitions


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, **kwargs)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration file, in order."""
    found = []
    for entry in resources.files("fleet.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append((int(name[:3]), name, entry.read_text()))
    return sorted(found)


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply the migrations not applied yet; return their names."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
    for version, name, sql in migrations():
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            row = conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (version,)).fetchone()
            if row:
                continue
            conn.execute(sql.encode())
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(name)
            log.info("applied migration %s", name)
    return applied


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def ensure_partitions(conn: psycopg.Connection[Any], around: dt.date, months_ahead: int = 2) -> list[str]:
    """Monthly partitions of `readings` from the month before `around` to `months_ahead` after it.

    Readings outside them land in `readings_default`; a month is created only while the default
    partition holds none of its rows (PostgreSQL refuses otherwise), so run this ahead of time
    (every worker does at start, `lintel-fleet partitions` from cron).
    """
    created = []
    start = _month_start(around - dt.timedelta(days=31))
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        for _ in range(months_ahead + 2):
            end = _next_month(start)
            name = f"readings_{start:%Y_%m}"
            exists = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
            if exists and exists[0] is None:
                conn.execute(
                    f"CREATE TABLE {name} PARTITION OF readings "  # name built from a date: safe
                    f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                )
                created.append(name)
            start = end
    return created
