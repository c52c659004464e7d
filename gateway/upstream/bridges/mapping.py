"""Mapping is data: how our point names and record kinds appear in each convention.

One table: a new meter profile gets its Home Assistant and Sparkplug view by adding its point names
here, or by naming them with a unit suffix the suffix table already knows. Nothing else in the
bridges knows a point name.

Home Assistant columns: `component` (sensor / binary_sensor), `device_class`, `unit`
(`unit_of_measurement`, one HA accepts for that device class), `state_class` (`total_increasing`
for our counters, `measurement` for instantaneous values) and `category` (`diagnostic` for values
about the device rather than what it measures).

Sparkplug B column (`sparkplug_metric`): the metric name is the point name; its datatype follows
the value and whether the point is a counter: integer counters `UInt64` (a negative one `Int64`),
other numbers `Double`, booleans `Boolean`, text `String`. Events are metrics `Events/{kind}` and
alarms `Alarms/{kind}` (`String`, docs/bridges.md). A point's datatype is fixed when its metric is
first born; a later value of another type is coerced or refused (counted) by the bridge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PointMap:
    component: str = "sensor"
    device_class: str | None = None
    unit: str | None = None
    state_class: str | None = "measurement"
    category: str | None = None


ENERGY = PointMap(device_class="energy", unit="kWh", state_class="total_increasing")
POWER = PointMap(device_class="power", unit="W")
VOLTAGE = PointMap(device_class="voltage", unit="V")
CURRENT = PointMap(device_class="current", unit="A")
WATER = PointMap(device_class="water", unit="m³", state_class="total_increasing")
# No device class: `volume_flow_rate` is refused by Home Assistant before 2024.2 (bench/ha_real.py).
FLOW = PointMap(unit="m³/h")
FREQUENCY = PointMap(device_class="frequency", unit="Hz")
REACTIVE = PointMap(device_class="reactive_power", unit="var")
APPARENT = PointMap(device_class="apparent_power", unit="VA")
POWER_FACTOR = PointMap(device_class="power_factor", unit=None)
REACTIVE_ENERGY = PointMap(unit="kvarh", state_class="total_increasing")

# Exact point names first (those whose suffix alone would say too little or the wrong thing).
POINTS: dict[str, PointMap] = {
    "volume_m3": WATER,
    "power_factor": POWER_FACTOR,
    "power_factor_l1": POWER_FACTOR,
    "power_factor_l2": POWER_FACTOR,
    "power_factor_l3": POWER_FACTOR,
    # BLE sensors (drivers/ble): BTHome meaning of true (README, BLE sensors)
    "door_open": PointMap("binary_sensor", "door", state_class=None),
    "opening": PointMap("binary_sensor", "opening", state_class=None),
    "window": PointMap("binary_sensor", "window", state_class=None),
    "motion": PointMap("binary_sensor", "motion", state_class=None),
    "wet": PointMap("binary_sensor", "moisture", state_class=None),
    "unlocked": PointMap("binary_sensor", "lock", state_class=None),
    "battery_pct": PointMap(device_class="battery", unit="%", category="diagnostic"),
    "rssi_dbm": PointMap(device_class="signal_strength", unit="dBm", category="diagnostic"),
    "temperature_c": PointMap(device_class="temperature", unit="°C"),
    "humidity_pct": PointMap(device_class="humidity", unit="%"),
    "firmware": PointMap(state_class=None, category="diagnostic"),
    # cameras
    "fps": PointMap(unit="fps", category="diagnostic"),
    "decode_ms": PointMap(device_class="duration", unit="ms", category="diagnostic"),
}

# Unit suffixes of point names (README: point names carry their unit), longest match wins.
SUFFIXES: dict[str, PointMap] = {
    "_kwh": ENERGY,
    "_kvarh": REACTIVE_ENERGY,
    "_w": POWER,
    "_v": VOLTAGE,
    "_a": CURRENT,
    "_m3": WATER,
    "_m3h": FLOW,
    "_hz": FREQUENCY,
    "_var": REACTIVE,
    "_va": APPARENT,
    "_pct": PointMap(unit="%"),
    "_c": PointMap(device_class="temperature", unit="°C"),
}

_BY_LENGTH = sorted(SUFFIXES.items(), key=lambda kv: -len(kv[0]))


def point_map(point: str, value: object) -> PointMap:
    """The HA view of a point. An unknown numeric point is a plain measurement; an unknown boolean
    a plain binary sensor; anything else a plain text sensor (no state class: HA would refuse it)."""
    found = POINTS.get(point)
    if found is not None:
        return found
    for suffix, mapped in _BY_LENGTH:
        if point.endswith(suffix):
            return mapped
    if isinstance(value, bool):
        return PointMap("binary_sensor", state_class=None)
    if isinstance(value, int | float):
        return PointMap()
    return PointMap(state_class=None)


# Unit suffixes an entity's name drops (HA shows the unit beside the value): the table's, and
# the other units our point names carry (BLE objects, camera figures).
NAME_UNITS = set(SUFFIXES) | {
    "_dbm", "_ms", "_s", "_ppm", "_ugm3", "_lux", "_hpa", "_mm", "_m", "_kg", "_lb", "_l", "_ml",
    "_deg", "_rpm", "_m_s", "_m_s2", "_deg_s", "_m3_h", "_us_cm", "_fps",
}  # fmt: skip
_NAME_UNITS_BY_LENGTH = sorted(NAME_UNITS, key=len, reverse=True)
_PHASE = re.compile(r"l[1-3]")
_NAME_WORDS = {"rssi": "RSSI", "co2": "CO2", "pm25": "PM2.5", "pm10": "PM10", "tvoc": "TVOC", "uv": "UV"}


def entity_name(what: str) -> str:
    """The Home Assistant name of an entity named by a point (or a role): words, no unit suffix,
    capitalised as HA names are: `battery_pct` → "Battery", `energy_import_kwh` → "Energy import",
    `voltage_l1_v` → "Voltage L1", `rssi_dbm` → "RSSI"."""
    stem = what
    for suffix in _NAME_UNITS_BY_LENGTH:
        if what.endswith(suffix) and len(what) > len(suffix):
            stem = what[: -len(suffix)]
            break
    words = [_NAME_WORDS.get(w, w.upper() if _PHASE.fullmatch(w) else w) for w in stem.split("_") if w]
    if not words:
        return what
    first = words[0]
    return " ".join([first[:1].upper() + first[1:], *words[1:]])


def sparkplug_metric(point: str, value: object, counter: bool) -> tuple[str, str] | None:
    """(metric name, Sparkplug datatype name) of a reading, or None for a value Sparkplug cannot
    carry as one of our datatypes."""
    if isinstance(value, bool):
        return point, "Boolean"
    if isinstance(value, int):
        if counter:
            return point, "UInt64" if value >= 0 else "Int64"
        return point, "Double"
    if isinstance(value, float):
        return point, "Double"
    if isinstance(value, str):
        return point, "String"
    return None


def sparkplug_event_metric(kind: str, alarm: bool) -> str:
    """The metric an event (or alarm) of `kind` is published as (datatype `String`)."""
    return f"{'Alarms' if alarm else 'Events'}/{kind}"
