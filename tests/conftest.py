from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.broker import Mosquitto  # noqa: E402
from tests.support.collector import Collector  # noqa: E402
from tests.support.configs import Table, config_toml  # noqa: E402
from tests.support.fleet_procs import PersistentMosquitto  # noqa: E402

# PostgreSQL fixtures for the fleet tests (pg_cluster, fleet_dsn)
pytest_plugins = ["tests.support.fleet_db"]


# Test files whose tests take 20 s or more each (CI `--durations`). pytest-xdist hands tests out in
# collection order, so one of these picked up last keeps a worker busy after the other has finished;
# starting them first lets the short tests fill the gaps. Order only, nothing is skipped.
SLOW_FIRST = (
    "test_release_updates.py",
    "test_face_pad_process.py",
    "test_fleet_page.py",
    "test_deploy_process.py",
    "test_fleet_load.py",
    "test_care_process.py",
    "test_releases.py",
    "test_command_flood_process.py",
    "test_face_tag_process.py",
    "test_fleet_operator.py",
    "test_native_seq_process.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def fleet_broker(tmp_path: Path) -> Iterator[PersistentMosquitto]:
    """A mosquitto that keeps sessions across its own restarts, as a fleet's broker is run."""
    b = PersistentMosquitto(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def collector(broker: Mosquitto) -> Iterator[Collector]:
    c = Collector(broker.port).start()
    yield c
    c.stop()


def gateway_toml(
    state_dir: Path,
    *,
    mqtt: str = "",
    sources: str = "",
    extra: str = "",
    gateway: Table | None = None,
    runtime: Table | None = None,
    outbox: Table | None = None,
    sections: Mapping[str, Table] | None = None,
) -> str:
    """A minimal config for tests (tests.support.configs.config_toml): `mqtt` is the body of an
    [mqtt] table (empty: no broker); `gateway`, `runtime`, `outbox` override keys of those tables."""
    return config_toml(
        state_dir,
        gateway=gateway,
        runtime=runtime,
        outbox=outbox,
        mqtt=mqtt,
        sources=sources,
        extra=extra,
        sections=sections,
    )
