"""`[[doors]]`: a door and the relay that releases its strike.

Relay types are a discriminated union on `type`, one model per kind of relay hardware. Wiring keys
(which bus, unit, coil, device address) change only through the local file and a restart; `pulse_s`
is a tunable.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from gateway.core.config_base import Identifier, StrictModel


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


RelayConfig = Annotated[ModbusCoilRelay, Field(discriminator="type")]


class DoorConfig(StrictModel):
    id: Identifier = Field(description="Door id, used by door_pulse and in access events.")
    pulse_s: float = Field(3, gt=0, le=30, description="How long the relay stays on for one opening.")
    relay: RelayConfig
