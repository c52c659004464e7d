"""From a validated `[doors.relay]` table to the `Relay` that drives it (Modbus coil or Shelly)."""

from __future__ import annotations

from gateway.core.actuators import ActuatorHub
from gateway.lanes.doors.config import ModbusCoilRelay, RelayConfig, ShellyGen2Relay
from gateway.lanes.doors.relays import ModbusRelay, Relay


def build_relay(config: RelayConfig, hub: ActuatorHub, *, password: str | None = None) -> Relay:
    """The relay for a validated `[doors.relay]` table. `password` is the content of the relay's
    `password_file` where it has one (the caller reads it: `gateway.config.loader.read_secret`)."""
    if isinstance(config, ModbusCoilRelay):
        return ModbusRelay(config, hub)
    if isinstance(config, ShellyGen2Relay):
        from gateway.lanes.doors.shelly import ShellyRelay  # its HTTP client only where a Shelly is wired

        return ShellyRelay(config, password)
    raise TypeError(f"unknown relay type {config!r}")
