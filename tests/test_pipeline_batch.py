"""A batch through the pipeline (SourceContext.emit_many -> Pipeline.submit_many) gives what the same
records give one by one: processors, counts, observers, refusals."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.core import Reading, Record, SourceContext, SystemClock
from gateway.core.devices import PointMemory
from gateway.runtime.pipeline import Pipeline


class Doubler:
    """A processor that adds a copy of every reading of point `p1` (tests the processors' pass)."""

    name = "doubler"

    def process(self, record: Record) -> Iterable[Record]:
        if isinstance(record, Reading) and record.point == "p1":
            return [record, Reading(record.source_id, "p1_copy", record.value, record.ts_ms)]
        return [record]

    def tick(self, now_ms: int) -> Iterable[Record]:
        return []


def run(batched: bool) -> tuple[list[Record], list[Record], int, int, PointMemory]:
    sunk: list[Record] = []
    observed: list[Record] = []

    def sink(r: Record) -> bool:
        if r.point == "p3":  # type: ignore[union-attr]
            return False  # refused, like telemetry on a full queue
        sunk.append(r)
        return True

    def sink_many(rs: list[Record]) -> list[bool]:
        return [sink(r) for r in rs]

    pipeline = Pipeline(sink, [Doubler()], [observed.append], sink_many if batched else None)
    memory = PointMemory()
    ctx = memory.tap(SourceContext("m1", SystemClock(), pipeline.submit, emit_many=pipeline.submit_many))
    records = [Reading("m1", f"p{i}", float(i), 1000) for i in range(5)]
    ok = ctx.emit_many(records) if batched else all([ctx.emit(r) for r in records])
    assert ok is False  # p3 was refused either way
    return sunk, observed, pipeline.accepted, pipeline.refused, memory


def test_a_batch_gives_what_its_records_give_one_by_one() -> None:
    one = run(batched=False)
    many = run(batched=True)
    assert many[:4] == one[:4]
    assert [r.point for r in many[0]] == ["p0", "p1", "p1_copy", "p2", "p4"]  # type: ignore[union-attr]
    assert (many[2], many[3]) == (5, 1)
    assert many[4].values == one[4].values == {"m1": {f"p{i}": float(i) for i in range(5)}}


def test_a_context_without_a_batch_path_emits_each_record() -> None:
    got: list[Record] = []
    ctx = SourceContext("m1", SystemClock(), lambda r: got.append(r) or True)
    assert ctx.emit_many([Reading("m1", "a", 1, 1), Reading("m1", "b", 2, 1)])
    assert [r.point for r in got] == ["a", "b"]  # type: ignore[union-attr]
