"""What the outbox writer turns records into: limits, and the grouping of records into messages.

Telemetry readings are batched per source (at most `batch_max_readings` per message); state
readings, events and stats are one message each. Every message takes the next row `seq` (the
outbox's order); a native message also takes the next native seq, the `seq` in its payload.
Bridges (gateway.upstream.bridges) add their messages after the native ones of the same commit:
rows of their own with `records = 0` (the native message counts the record) and no native seq, so
the native numbering has no holes that are not drops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gateway.core import Event, Klass, Reading
from gateway.upstream.bridges.base import Group
from gateway.upstream.encode import Encoder

MIB = 1024 * 1024


class MessageRow(NamedTuple):
    klass: Klass
    seq: int  # the row's place in the outbox
    native_seq: int | None  # the seq in its payload; None for a bridge row
    topic: str
    payload: bytes
    records: int  # records in it (0: a bridge row)

    @property
    def size(self) -> int:
        return len(self.topic) + len(self.payload)


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    commit_window_s: float = 0.25
    max_bytes: int = 256 * MIB
    min_free_bytes: int = 64 * MIB
    max_pending: int = 100_000
    batch_max_readings: int = 500
    class_max_bytes: Mapping[Klass, int | None] = field(default_factory=dict)
    class_max_age_ms: Mapping[Klass, int] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Any) -> OutboxLimits:
        return cls(
            commit_window_s=cfg.commit_window_ms / 1000,
            max_bytes=int(cfg.max_mb * MIB),
            min_free_bytes=int(cfg.min_free_disk_mb * MIB),
            max_pending=cfg.max_pending_records,
            batch_max_readings=cfg.batch_max_readings,
            class_max_bytes={
                Klass.parse(name): (int(lim.max_mb * MIB) if lim.max_mb else None)
                for name, lim in cfg.classes.items()
            },
            class_max_age_ms={
                Klass.parse(name): int(lim.max_age_h * 3_600_000) for name, lim in cfg.classes.items()
            },
        )


@dataclass(slots=True)
class StatsBody:
    """A gateway stats message waiting for its seq (state class)."""

    body: Mapping[str, Any]


@dataclass(slots=True)
class ResultBody:
    """A command result waiting for its seq (event class: durable, ordered with the events)."""

    body: Mapping[str, Any]
    klass: Klass = Klass.EVENT


Item = Reading | Event | StatsBody | ResultBody


def item_klass(item: Item) -> Klass:
    return Klass.STATE if isinstance(item, StatsBody) else item.klass


def _split(items: list[Item]) -> tuple[list[Item], dict[str, list[Reading]]]:
    singles: list[Item] = []
    telemetry: dict[str, list[Reading]] = {}
    for item in items:
        if isinstance(item, Reading) and item.klass == Klass.TELEMETRY:
            telemetry.setdefault(item.source_id, []).append(item)
        else:
            singles.append(item)
    return singles, telemetry


def build_messages(
    items: list[Item], encoder: Encoder, last_row: int, last_seq: int, now_ms: int, batch_max_readings: int
) -> list[MessageRow]:
    """Encode `items` as rows numbered from last_row + 1, native messages from last_seq + 1."""
    singles, telemetry = _split(items)
    rows: list[MessageRow] = []
    row, seq = last_row, last_seq
    for item in singles:
        row, seq = row + 1, seq + 1
        if isinstance(item, StatsBody):
            topic, payload = encoder.stats(seq, now_ms, item.body)
        elif isinstance(item, ResultBody):
            topic, payload = encoder.command_result(seq, now_ms, item.body)
        elif isinstance(item, Event):
            topic, payload = encoder.event(seq, item)
        else:
            topic, payload = encoder.state(seq, item)
        rows.append(MessageRow(item_klass(item), row, seq, topic, payload, 1))
    for source_id, readings in telemetry.items():
        for start in range(0, len(readings), batch_max_readings):
            chunk = readings[start : start + batch_max_readings]
            row, seq = row + 1, seq + 1
            topic, payload = encoder.telemetry(seq, now_ms, source_id, chunk)
            rows.append(MessageRow(Klass.TELEMETRY, row, seq, topic, payload, len(chunk)))
    if encoder.bridges:
        group = Group(
            [i for i in items if isinstance(i, Reading | Event)],
            [i.body for i in items if isinstance(i, StatsBody)],
            now_ms,
        )
        for msg in encoder.bridges.messages(group):
            row += 1
            rows.append(MessageRow(msg.klass, row, None, msg.topic, msg.payload, 0))
    return rows
