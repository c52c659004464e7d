"""Doors: relays that release door strikes, and the component that keeps them fail-safe."""

from gateway.doors.config import DoorConfig, ModbusCoilRelay, RelayConfig, ShellyGen2Relay
from gateway.doors.lane import DoorError, Doors, DoorsReport

__all__ = [
    "DoorConfig",
    "DoorError",
    "Doors",
    "DoorsReport",
    "ModbusCoilRelay",
    "RelayConfig",
    "ShellyGen2Relay",
]
