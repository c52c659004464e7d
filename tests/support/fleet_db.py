"""PostgreSQL for the fleet tests: one throw-away cluster per test process, one fresh database per
test (fsync off: these tests are about our logic, the bench measures the real write cost)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from fleet import db
from fleet.pg import LocalPostgres


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalPostgres]:
    cluster = LocalPostgres(
        settings={"fsync": "off", "synchronous_commit": "off", "max_connections": "50"}
    ).start()
    yield cluster
    cluster.remove()


@pytest.fixture
def fleet_dsn(pg_cluster: LocalPostgres) -> Iterator[str]:
    name = f"fleet_{secrets.token_hex(4)}"
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}".encode())
    dsn = pg_cluster.dsn.rsplit("/", 1)[0] + f"/{name}"
    with db.connect(dsn) as c:
        db.migrate(c)
    yield dsn


def wait_for(predicate: Callable[[], Any], timeout_s: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


def scalar(dsn: str, sql: str, *params: Any) -> Any:
    with psycopg.connect(dsn) as c:
        row = c.execute(sql.encode(), params).fetchone()
    return None if row is None else row[0]
