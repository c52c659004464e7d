"""Doors: relays that release door strikes, and the component that keeps them fail-safe."""

from gateway.lanes.doors.config import DoorConfig, ModbusCoilRelay, RelayConfig, ShellyGen2Relay
from gateway.lanes.doors.lane import DoorError, Doors, DoorsReport, build_doors, lane_of

__all__ = [
    "DoorConfig",
    "DoorError",
    "Doors",
    "DoorsReport",
    "ModbusCoilRelay",
    "RelayConfig",
    "ShellyGen2Relay",
    "build_doors",
    "lane_of",
]
