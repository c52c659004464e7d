from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.broker import Mosquitto  # noqa: E402
from tests.support.collector import Collector  # noqa: E402

# PostgreSQL fixtures for the fleet tests (pg_cluster, fleet_dsn)
pytest_plugins = ["tests.support.fleet_db"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def collector(broker: Mosquitto) -> Iterator[Collector]:
    c = Collector(broker.port).start()
    yield c
    c.stop()


def gateway_toml(state_dir: Path, *, mqtt: str = "", sources: str = "", extra: str = "") -> str:
    """A minimal config for tests; `mqtt` is the body of an [mqtt] table (empty: no broker)."""
    text = f"""
[gateway]
id = "gw-test"
site = "site-a"
state_dir = "{state_dir}"
runtime_dir = "{state_dir / "run"}"

[outbox]
min_free_disk_mb = 1
{extra}
"""
    if mqtt:
        text += f"\n[mqtt]\n{mqtt}\n"
    return text + sources
