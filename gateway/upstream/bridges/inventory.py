"""What a bridge may know of the gateway's configuration: ids only (never a name, a unit number of
a resident, a picture), built by the runtime from the validated config."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_id(text: str) -> str:
    """An id usable in a Home Assistant discovery topic (`[a-zA-Z0-9_-]+`)."""
    return _UNSAFE.sub("_", text) or "_"


@dataclass(frozen=True, slots=True)
class Inventory:
    """`devices`: (device id, what it is: the source type, e.g. `modbus`, `ble`, `camera`).
    `parents`: (device id, the source it is reached through: a meter's bus, a sensor's adapter)."""

    site: str
    gateway_id: str
    version: str
    devices: tuple[tuple[str, str], ...] = ()
    fire_lanes: tuple[str, ...] = ()
    entrances: tuple[str, ...] = ()
    parents: tuple[tuple[str, str], ...] = ()

    @property
    def device_ids(self) -> set[str]:
        return {d for d, _ in self.devices} | set(self.fire_lanes) | set(self.entrances)
