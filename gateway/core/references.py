"""Ids that config sections declare and ids they name, for one generic reference check.

Each lane's config module says which ids its section declares (`Named`: a door, a fire lane, a
household) and which ids it names (`Ref`: the camera a fire lane watches, the bus a relay sits on).
`gateway.config.references` resolves them all in one place, with a did-you-mean, so config never
needs to know what any lane's section looks like.
"""

from __future__ import annotations

from dataclasses import dataclass

# The kinds of id the [[sources]] declare, and how an error names them.
DEVICE = "device"
CAMERA = "camera"
MODBUS = "modbus"
BLE = "ble"
SOURCE_KINDS = {
    DEVICE: "a device in [[sources]]",
    CAMERA: "a [[sources]] entry of type camera",
    MODBUS: "a [[sources]] entry of type modbus",
    BLE: "a [[sources]] entry of type ble",
}


@dataclass(frozen=True, slots=True)
class Named:
    """An id declared at `path`, of `kind`; unique among all ids of its `space`."""

    path: str
    id: str
    kind: str
    space: str = "ids"  # sources, doors, fire lanes, entrances and households share one
    problem: str = "duplicate id"


@dataclass(frozen=True, slots=True)
class Ref:
    """An id named at `path` that must be declared with `kind` (`what` says what that is)."""

    path: str
    name: str
    kind: str
    problem: str
    what: str
