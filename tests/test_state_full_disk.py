"""Processor state on a disk that fills up (a real tmpfs): nothing raises into the lanes, the
alarm a rule raises while the disk is full is still emitted (and resolved exactly once), and the
rows held in memory reach the file once space returns."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.core import Reading
from gateway.lanes.alarms import AlarmBook
from gateway.lanes.rules.config import ThresholdRule
from gateway.lanes.rules.engine import RulesProcessor
from gateway.storage.state import StateStore
from tests.test_outbox_disk import fill, small_disk  # noqa: F401 - the tmpfs fixture

T0 = 1_790_000_000_000


def temp(value: float, i: int) -> Reading:
    return Reading("boiler", "temperature_c", value, T0 + i * 1000)


def test_a_rule_alarm_raised_on_a_full_disk_is_emitted_and_saved_once_space_returns(
    small_disk: Path,  # noqa: F811
) -> None:
    store = StateStore(small_disk / "state.db")
    rule = ThresholdRule(type="threshold", id="hot", source="boiler", point="temperature_c", above=90.0)
    rules = RulesProcessor([rule], AlarmBook(store), store)
    assert [r.kind for r in rules.process(temp(20, 0)) if hasattr(r, "kind")] == []
    filler = small_disk / "filler"
    fill(filler)

    opened = [r for r in rules.process(temp(95, 1)) if hasattr(r, "kind")]  # must not raise
    assert [e.kind for e in opened] == ["threshold_exceeded"]
    alarm_id = opened[0].attrs["alarm_id"]
    assert store.failed_writes >= 1
    assert alarm_id in store.load("alarm")  # held in memory, visible to readers of this store

    os.unlink(filler)
    resolved = [r for r in rules.process(temp(20, 2)) if hasattr(r, "kind")]
    assert [(e.kind, e.attrs["alarm_id"]) for e in resolved] == [("alarm_resolved", alarm_id)]
    assert store.flush()
    store.close()

    on_disk = StateStore(small_disk / "state.db", read_only=True)
    assert on_disk.load("alarm") == {}  # opened then closed: nothing left open
    assert int(on_disk.load("alarm_meta")["next_id"]) == int(alarm_id) + 1
    on_disk.close()


def test_rows_written_while_full_reach_the_file_when_space_returns(small_disk: Path) -> None:  # noqa: F811
    store = StateStore(small_disk / "state.db")
    store.save("care", {"h1": {"last_ms": 1}})
    filler = small_disk / "filler"
    fill(filler)
    for i in range(50):
        store.save("care", {"h1": {"last_ms": i}, f"h{i}": {"x": "y" * 200}})
    assert store.failed_writes > 0 and store.load("care")["h1"] == {"last_ms": 49}
    os.unlink(filler)
    store.save("care", {}, deleted=["h3"])
    store.close()
    reread = StateStore(small_disk / "state.db", read_only=True)
    rows = reread.load("care")
    assert rows["h1"] == {"last_ms": 49} and "h3" not in rows and len(rows) == 49  # h0..h49, less h3
    reread.close()
