"""Per-device health: what one meter, sensor or camera says about itself, in one frozen type.

A source that owns several devices (a Modbus bus, a BLE adapter) or one (a camera) may implement
`DeviceReporter`; the runtime checks it with `isinstance`, like `FrameSource`, and collects the
reports into status.json and the upstream `stats` message. The counters are the driver's own (Modbus
errors by reason, BLE adverts and refusals, camera reconnects); the latest value of each point is
kept by a `PointMemory` the source taps its emit with, rounded to the precision that means something
for its unit (a kWh counter to 10 Wh, a voltage to 0.1 V), the unit read off the point's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from gateway.core.records import Event, Reading, Record, Value
from gateway.core.source import SourceContext

DeviceKind = Literal["meter", "sensor", "camera"]

# Point-name suffix -> (unit, decimals). Decimals are what the device resolves or what a technician
# can act on: a meter's register keeps 0.01 kWh; a power reading's tenths of a watt are noise.
_UNITS: tuple[tuple[str, str, int], ...] = (
    ("_kvarh", "kvarh", 2),
    ("_kwh", "kWh", 2),
    ("_m3h", "m³/h", 3),
    ("_m3", "m³", 3),
    ("_var", "var", 0),
    ("_va", "VA", 0),
    ("_w", "W", 0),
    ("_v", "V", 1),
    ("_a", "A", 2),
    ("_hz", "Hz", 2),
    ("_c", "°C", 1),
    ("_pct", "%", 0),
    ("_dbm", "dBm", 0),
    ("_ms", "ms", 1),
    ("fps", "fps", 1),
)


@dataclass(frozen=True, slots=True)
class PointValue:
    name: str
    value: bool | int | float | str
    unit: str  # "" when the name carries none (power_factor, door_open)


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """One device's health. `online` is None until the driver has had a first answer or silence;
    `offline_since_ms` is when it went offline (None while online or never seen going down)."""

    device_id: str
    source_id: str
    kind: DeviceKind
    online: bool | None
    last_seen_ms: int | None
    offline_since_ms: int | None
    counters: dict[str, int]  # the driver's own, by name
    errors: int  # of those, the ones a technician should look into (failed reads, refused adverts)
    points: tuple[PointValue, ...]
    last_error: str | None = None


@runtime_checkable
class DeviceReporter(Protocol):
    def device_reports(self) -> list[DeviceReport]:
        """The health of every device this running source owns; cheap, called on the event loop."""
        ...


def unit_of(point: str) -> tuple[str, int | None]:
    """(unit, decimals) read off a point name; decimals None when nothing is known."""
    if point.startswith("power_factor"):
        return "", 2
    for suffix, unit, decimals in _UNITS:
        if point.endswith(suffix):
            return unit, decimals
    return "", None


def point_value(point: str, value: Value) -> PointValue:
    """A reading's value rounded to its meaningful precision, with its unit."""
    unit, decimals = unit_of(point)
    if isinstance(value, float) and decimals is not None:
        value = round(value) if decimals == 0 else round(value, decimals)
    return PointValue(point, value, unit)


class PointMemory:
    """The latest reading of every point per device and the device's offline episodes, learnt from
    the records a source emits. `tap(ctx)` returns a context whose emit also feeds this memory."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Value]] = {}
        self.last_reading_ms: dict[str, int] = {}
        self.offline_since_ms: dict[str, int] = {}

    def observe(self, record: Record) -> None:
        if isinstance(record, Reading):
            self.values.setdefault(record.source_id, {})[record.point] = record.value
            self.last_reading_ms[record.source_id] = record.ts_ms
        elif isinstance(record, Event):
            if record.kind in ("device_offline", "camera_offline"):
                self.offline_since_ms.setdefault(record.source_id, record.ts_ms)
            elif record.kind in ("device_online", "camera_online"):
                self.offline_since_ms.pop(record.source_id, None)

    def points(self, device_id: str) -> tuple[PointValue, ...]:
        values = self.values.get(device_id, {})
        return tuple(point_value(name, values[name]) for name in sorted(values))

    def tap(self, ctx: SourceContext) -> SourceContext:
        emit: Callable[[Record], bool] = ctx.emit

        def emit_and_remember(record: Record) -> bool:
            self.observe(record)
            return emit(record)

        def emit_many_and_remember(records: Sequence[Record]) -> bool:
            for record in records:
                self.observe(record)
            return ctx.emit_many(records)

        return SourceContext(
            ctx.source_id,
            ctx.clock,
            emit_and_remember,
            ctx.progress,
            ctx.log,
            ctx.store,
            emit_many=emit_many_and_remember,
        )
