"""The drivers' persistence seam: `SourceContext.store`, satisfied by the daemon's StateStore."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core import KeyValueStore, MemoryStore, SourceContext, SystemClock
from gateway.storage.state import StateStore


@pytest.fixture(params=["memory", "state.db"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> KeyValueStore:
    return MemoryStore() if request.param == "memory" else StateStore(tmp_path / "state.db")


def test_values_round_trip_by_namespace_and_key(store: KeyValueStore) -> None:
    assert isinstance(store, KeyValueStore)
    assert store.get("ble.counters", "AA") is None
    value = {"counter": 4_294_967_295, "key": "0123abcd", "list": [1, "x", None, True]}
    store.put("ble.counters", "AA", value)
    store.put("other", "AA", 1)
    assert store.get("ble.counters", "AA") == value and store.get("other", "AA") == 1
    value["counter"] = 0  # stored by value, not by reference
    assert store.get("ble.counters", "AA")["counter"] == 4_294_967_295
    store.put("ble.counters", "AA", 7)
    assert store.get("ble.counters", "AA") == 7


def test_state_store_keeps_values_across_reopening(tmp_path: Path) -> None:
    first = StateStore(tmp_path / "state.db")
    first.put("ble.counters", "54:48:E6:8F:80:A5", {"counter": 12})
    first.close()
    again = StateStore(tmp_path / "state.db", read_only=True)
    assert again.get("ble.counters", "54:48:E6:8F:80:A5") == {"counter": 12}
    assert again.load("ble.counters") == {"54:48:E6:8F:80:A5": {"counter": 12}}


def test_a_corrupt_row_reads_as_absent(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.conn.execute("INSERT INTO state (ns, key, value) VALUES ('ble.counters', 'AA', '{not json')")
    assert store.get("ble.counters", "AA") is None


def test_a_context_without_a_store_gets_one_in_memory() -> None:
    ctx = SourceContext("s1", SystemClock(), lambda r: True)
    assert isinstance(ctx.store, MemoryStore)
    store = MemoryStore()
    assert SourceContext("s1", SystemClock(), lambda r: True, store=store).store is store
