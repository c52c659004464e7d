"""`[[doors]]`: a door and the relay that releases its strike.

Relay types are a discriminated union on `type`, one model per kind of relay hardware. Wiring keys
(which bus, unit, coil, device address) change only through the local file and a restart; `pulse_s`
is a tunable.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from gateway.core.config_base import Identifier, StrictModel, check_url
from gateway.core.references import MODBUS, SOURCE_KINDS, Named, Ref


class FlashFunction(StrictModel):
    """A relay board's own timed pulse ("flash on"): function 05 at `address_base + coil` with the
    duration in `unit_ms` steps as the value (e.g. Waveshare/Eletechsup boards: base 0x0200, 100 ms).
    The board switches itself off, so even a killed gateway cannot hold the door open."""

    address_base: int = Field(ge=0, le=65_535, description="Coil address of relay 0's flash command.")
    unit_ms: int = Field(100, ge=1, le=10_000, description="Duration step of the value, in ms.")
    max_steps: int = Field(255, ge=1, le=65_535, description="Largest duration value the board takes.")


class ModbusCoilRelay(StrictModel):
    type: Literal["modbus_coil"]
    bus: Identifier = Field(description="Id of the [[sources]] modbus bus the relay module is on.")
    unit: int = Field(ge=1, le=247, description="Modbus unit id of the relay module.")
    coil: int = Field(ge=0, le=65_535, description="Coil address of this door's relay.")
    timeout_ms: int = Field(500, ge=10, le=10_000, description="Reply timeout for the relay writes.")
    flash: FlashFunction | None = Field(
        None, description="The board's hardware-timed pulse, where it has one (see FlashFunction)."
    )


class ShellyGen2Relay(StrictModel):
    """A Shelly Gen2/Gen3/Pro relay reached over its local HTTP RPC (`POST /rpc`, JSON-RPC 2.0).

    A pulse is `Switch.Set` with `toggle_after`: the device switches itself back off, so even a
    killed gateway cannot hold the door open. With authentication enabled on the device (user
    "admin", set in the Shelly app or web page), `password_file` holds its password."""

    type: Literal["shelly_gen2"]
    url: str = Field(description="The device: http://host or http://host:port (no path, no credentials).")
    switch: int = Field(0, ge=0, le=15, description="Id of the switch (output) of this door's relay.")
    password_file: str | None = Field(
        None, description="File holding the device's password (one line); relative to the config file."
    )
    timeout_ms: int = Field(2000, ge=50, le=30_000, description="Reply timeout of one RPC, in ms.")

    @field_validator("url")
    @classmethod
    def _plain_http_url(cls, url: str) -> str:
        expected = "http://host or http://host:port, e.g. http://192.168.10.40"
        return check_url(url, "device URL", ("http",), expected, "the url without them, and password_file")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80


RelayConfig = Annotated[ModbusCoilRelay | ShellyGen2Relay, Field(discriminator="type")]


class DoorConfig(StrictModel):
    id: Identifier = Field(description="Door id, used by door_pulse and in access events.")
    pulse_s: float = Field(3, gt=0, le=30, description="How long the relay stays on for one opening.")
    relay: RelayConfig


def names(doors: list[DoorConfig]) -> list[Named]:
    return [Named(f"doors[{i}].id", d.id, "door") for i, d in enumerate(doors)]


def references(doors: list[DoorConfig]) -> list[Ref]:
    """The Modbus bus each coil relay sits on (a Shelly relay is reached over the LAN)."""
    return [
        Ref(f"doors[{i}].relay.bus", d.relay.bus, MODBUS, "unknown modbus bus", SOURCE_KINDS[MODBUS])
        for i, d in enumerate(doors)
        if isinstance(d.relay, ModbusCoilRelay)
    ]
