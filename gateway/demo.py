"""The demo building: a config of simulated devices, validated like an installer's file.

Later lanes add their simulators here (Modbus meters on a simulated bus, BLE door sensors,
cameras) so `lintel demo` always shows the whole gateway working without hardware.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config import LoadedConfig, parse_config


def demo_config_text(state_dir: Path, broker: str | None) -> str:
    mqtt = ""
    if broker:
        mqtt = f"""
[mqtt]
url = "{broker}"
stats_interval_s = 10
"""
    return f"""
[gateway]
id = "demo-gw"
site = "demo-court"
state_dir = "{state_dir}"
runtime_dir = "{state_dir / "run"}"

[outbox]
max_mb = 64
min_free_disk_mb = 16
{mqtt}
[[sources]]
id = "meter-1a"
type = "simulated"
profile = "electricity_meter"
interval_s = 1.0
seed = 1

[[sources]]
id = "meter-1b"
type = "simulated"
profile = "electricity_meter"
interval_s = 1.0
seed = 2

[[sources]]
id = "water-1"
type = "simulated"
profile = "water_meter"
interval_s = 2.0
seed = 3

[[sources]]
id = "door-front"
type = "simulated"
profile = "door_sensor"
interval_s = 3.0
seed = 4
alarm_probability = 0.02

[[sources]]
id = "door-back"
type = "simulated"
profile = "door_sensor"
interval_s = 5.0
seed = 5
fail_after_polls = 20
"""


def demo_config(state_dir: Path, broker: str | None) -> LoadedConfig:
    state_dir = state_dir.resolve()
    return parse_config(demo_config_text(state_dir, broker).encode(), "demo", state_dir)
