"""Records: what sources produce and the outbox stores.

Frozen, slotted dataclasses because they sit on the hot path (20k+/s). Point names carry their
unit (`energy_kwh`, `power_w`); timestamps are wall-clock milliseconds from the injected clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Literal

Value = float | int | bool | str
Severity = Literal["info", "warning", "alarm"]
Quality = Literal["good", "uncertain", "bad"]


class Klass(IntEnum):
    """Priority class of a record in the outbox. Higher values are sent first and dropped last."""

    TELEMETRY = 0
    STATE = 1
    EVENT = 2
    ALARM = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Klass:
        return cls[name.upper()]


@dataclass(frozen=True, slots=True)
class Reading:
    """One measured value of one point of one source.

    `klass` is TELEMETRY for periodic measurements (batched upstream) or STATE for values where only
    the latest matters and each change is worth a message of its own (a door's open/closed state).
    `counter` marks a cumulative total (kWh, m³): consumption is the difference of successive values,
    and a `counter_reset` event of the same source marks where the series restarts.
    """

    source_id: str
    point: str
    value: Value
    ts_ms: int
    quality: Quality = "good"
    klass: Klass = Klass.TELEMETRY
    counter: bool = False


def _no_attrs() -> Mapping[str, object]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened (`door_opened`, `device_offline`, `fire_lane_blocked`).

    Severity `alarm` puts the event in the ALARM class: it is committed at once, fully synced, sent
    first and never dropped for space while the disk floor holds.
    """

    source_id: str
    kind: str
    ts_ms: int
    attrs: Mapping[str, object] = field(default_factory=_no_attrs)
    severity: Severity = "info"

    @property
    def klass(self) -> Klass:
        return Klass.ALARM if self.severity == "alarm" else Klass.EVENT


Record = Reading | Event
