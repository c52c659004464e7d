"""A Modbus bus config as `[[sources]]` would give the driver, for the tests that run a
`ModbusBusSource` in-process against a simulator (the process tests write TOML: configs.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from drivers.modbus.config import ModbusBusConfig


def tcp_bus(
    port: int, bus_id: str, meters: Sequence[Mapping[str, object]], **keys: object
) -> ModbusBusConfig:
    """Bus `bus_id` on a Modbus TCP server on loopback `port` with `meters` (more bus keys, e.g.
    interval_s or timeout_ms, as keywords)."""
    table = {"type": "modbus", "id": bus_id, "endpoint": f"tcp://127.0.0.1:{port}", "meters": list(meters)}
    return ModbusBusConfig.model_validate({**table, **keys})
