"""TOML snippets the process tests share: a broker section and a Modbus bus with one power meter."""

from __future__ import annotations


def mqtt_toml(port: int, extra: str = "") -> str:
    """The body of an [mqtt] table for a test broker on loopback, reconnecting quickly."""
    return f'url = "mqtt://127.0.0.1:{port}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 1\n{extra}'


def meter_bus_toml(port: int, meter: str = "m1", interval_s: float = 0.5) -> str:
    """`[[sources]]` bus-1 on a Modbus TCP simulator with one SDM120 (unit 1) read for power_w."""
    return f"""
[[sources]]
id = "bus-1"
type = "modbus"
endpoint = "tcp://127.0.0.1:{port}"
interval_s = {interval_s}

[[sources.meters]]
id = "{meter}"
unit = 1
profile = "eastron_sdm120"
read = ["power_w"]
"""


def threshold_rule_toml(source: str, above: float, rule_id: str = "overload") -> str:
    return f"""
[[rules]]
id = "{rule_id}"
type = "threshold"
source = "{source}"
point = "power_w"
above = {above}
"""
