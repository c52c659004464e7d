"""Doors: relays that release door strikes, and the component that keeps them fail-safe."""

from gateway.lanes.doors.config import DoorConfig, ModbusCoilRelay, RelayConfig, ShellyGen2Relay
from gateway.lanes.doors.lane import DoorError, Doors, DoorsReport

__all__ = [
    "DoorConfig",
    "DoorError",
    "Doors",
    "DoorsReport",
    "ModbusCoilRelay",
    "RelayConfig",
    "ShellyGen2Relay",
]
