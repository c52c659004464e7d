"""The points that say most about a device, per kind, for the views of a whole building.

Each kind lists groups in display order; a view shows, from each group, the first point the device
has (a meter reports its energy as `energy_import_kwh` or `energy_total_kwh`, by profile). The
on-site screen (gateway/cli/dashboard.py: `lintel status --watch`, `lintel demo`) and the fleet's
building page (fleet/building_page.py) both read these tables, so a building looks the same on site
and in the fleet. The names are the upstream schema's point names (docs/upstream-schema.md); the
fleet may import this module (the import contracts keep it off everything but gateway.upstream).
"""

from __future__ import annotations

PointGroups = tuple[tuple[str, ...], ...]

METER_POINTS: PointGroups = (
    ("power_w",),
    ("energy_import_kwh", "energy_total_kwh"),
    ("volume_m3",),
    ("flow_m3h",),
    ("voltage_v", "voltage_l1_v"),
)
SENSOR_POINTS: PointGroups = (("door_open",), ("temperature_c",), ("humidity_pct",), ("battery_pct",))
CAMERA_POINTS: PointGroups = (("fps",), ("decode_ms",))
