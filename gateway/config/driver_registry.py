"""The explicit driver registry: one line per source type.

Config classes are imported eagerly (pydantic only, cheap) so the config schema knows every type;
source classes are imported lazily, when a source of that type is started, so a missing device
library only affects the sources that need it and is reported as a clear error.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from gateway.core import Source
from gateway.core.config_base import SourceConfigBase


@dataclass(frozen=True, slots=True)
class DriverSpec:
    type: str
    config: str  # "module:Class" of the pydantic config model
    source: str  # "module:Class" of the Source implementation; its __init__ takes the config
    summary: str


DRIVERS: dict[str, DriverSpec] = {
    spec.type: spec
    for spec in [
        DriverSpec(
            "simulated",
            "drivers.simulated.config:SimulatedSourceConfig",
            "drivers.simulated.source:SimulatedSource",
            "simulated meters and door sensors (demo, tests, benchmarks)",
        ),
        DriverSpec(
            "modbus",
            "drivers.modbus.config:ModbusBusConfig",
            "drivers.modbus.source:ModbusBusSource",
            "a Modbus bus (RS-485 serial port, Modbus TCP gateway) and the meters on it",
        ),
        DriverSpec(
            "ble",
            "drivers.ble.config:BleConfig",
            "drivers.ble.source:BleSource",
            "a Bluetooth adapter and the BLE door/window sensors it listens to",
        ),
        DriverSpec(
            "camera",
            "drivers.camera.config:CameraConfig",
            "drivers.camera.source:CameraSource",
            "a camera stream (RTSP, HTTP, USB, file) whose latest frame the analytics read",
        ),
    ]
}


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def config_classes() -> list[type[SourceConfigBase]]:
    return [_load(spec.config) for spec in DRIVERS.values()]


def create_source(config: SourceConfigBase) -> Source:
    """Instantiate the source for a validated config. Imports the driver's device library now."""
    spec = DRIVERS[config.type]
    cls = _load(spec.source)
    source: Source = cls(config)
    return source
