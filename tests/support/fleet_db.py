"""PostgreSQL for the fleet tests: one throw-away cluster per test process, one fresh database per
test (fsync off: these tests are about our logic, the bench measures the real write cost)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from fleet import db
from fleet.pg import LocalPostgres
from tests.support import waiting


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalPostgres]:
    cluster = LocalPostgres(
        settings={"fsync": "off", "synchronous_commit": "off", "max_connections": "50"}
    ).start()
    yield cluster
    cluster.remove()


def fresh_fleet_db(pg: LocalPostgres) -> str:
    """A new, migrated fleet database in the cluster; its DSN."""
    name = f"fleet_{secrets.token_hex(4)}"
    with psycopg.connect(pg.dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}".encode())
    dsn = pg.dsn.rsplit("/", 1)[0] + f"/{name}"
    with db.connect(dsn) as c:
        db.migrate(c)
    return dsn


@pytest.fixture
def fleet_dsn(pg_cluster: LocalPostgres) -> Iterator[str]:
    yield fresh_fleet_db(pg_cluster)


def wait_for(predicate: Callable[[], Any], timeout_s: float = 60, what: str = "condition") -> Any:
    """`waiting.wait_for`, polling every 0.1 s: each poll here is a database query."""
    return waiting.wait_for(predicate, timeout_s, what, poll_s=0.1)


def scalar(dsn: str, sql: str, *params: Any) -> Any:
    with psycopg.connect(dsn) as c:
        row = c.execute(sql.encode(), params).fetchone()
    return None if row is None else row[0]
