"""`[[doors]]`: a door and the relay that releases its strike.

Relay types are a discriminated union on `type`, one model per kind of relay hardware. Wiring keys
(which bus, unit, coil, device address) change only through the local file and a restart; `pulse_s`
is a tunable.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from gateway.core.config_base import (
    Identifier,
    StrictModel,
    check_file_name,
    check_url,
    custom_error,
    one_password_source,
)
from gateway.core.references import MODBUS, SOURCE_KINDS, Named, Ref

# At stop (and before a reload restarts a bus), the doors retry switching their relays off for up to
# this long; the runtime never cuts it short, and `runtime.shutdown_timeout_s` must hold it twice.
DOOR_STOP_BUDGET_S = 3.0

RELAY_PASSWORD_FILE = "a readable file holding the relay device's password"

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


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
    killed gateway cannot hold the door open. The device must have authentication enabled (user
    "admin", set in the Shelly app or web page): `password_file` holds its password, and a door
    without one is refused. `device_id` pins the device (its id from `Shelly.GetDeviceInfo`, which
    `lintel doors probe` writes): credentials are answered only to a challenge from that device.
    The device is reached over plain HTTP: its LAN must be isolated (README "Door relays")."""

    type: Literal["shelly_gen2"]
    url: str = Field(description="The device: http://host or http://host:port (no path, no credentials).")
    switch: int = Field(0, ge=0, le=15, description="Id of the switch (output) of this door's relay.")
    password_file: str | None = Field(
        None,
        description="File holding the device's password (one line); relative to the config file. "
        "Required, unless password_secret names a deployed one.",
    )
    device_id: str | None = Field(
        None,
        pattern=DEVICE_ID_PATTERN,
        description="The device's id (Shelly.GetDeviceInfo `id`, e.g. shellypro1-0c8b95f2e1a4), written "
        "by `lintel doors probe`. Required: no credentials go to another device.",
    )
    mac: str | None = Field(
        None,
        pattern=r"^[0-9A-F]{12}$",
        description="The device's MAC as Shelly.GetDeviceInfo gives it (12 hex digits), written by "
        "`lintel doors probe`, which reports a device whose id does not match.",
    )
    password_secret: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="Name of a deployed secret holding the password (instead of password_file).",
    )
    timeout_ms: int = Field(2000, ge=50, le=30_000, description="Reply timeout of one RPC, in ms.")

    @field_validator("url")
    @classmethod
    def _plain_http_url(cls, url: str) -> str:
        expected = "http://host or http://host:port, e.g. http://192.168.10.40"
        return check_url(url, "device URL", ("http",), expected, "the url without them, and password_file")

    @field_validator("password_file")
    @classmethod
    def _named_file(cls, value: str | None) -> str | None:
        return check_file_name(value, RELAY_PASSWORD_FILE, "password_file")

    @model_validator(mode="after")
    def _authenticated_and_pinned(self) -> ShellyGen2Relay:
        one_password_source(self.password_file, self.password_secret)
        if self.password_file is None and self.password_secret is None:
            raise custom_error(
                "a Shelly relay without a password opens the door for anyone on its network",
                "enable authentication on the device (Settings → Authentication) and set password_file = "
                '"/etc/lintel/shelly-<door>.pass" (a long random password, mode 0640 root:lintel), or '
                "password_secret for a deployed one",
                key="password_file",
                got="none",
            )
        if self.device_id is None:
            raise custom_error(
                "the device is not pinned: the password would be answered to any device on its address",
                "the device's id: run `lintel doors probe DOOR --write` (it reads Shelly.GetDeviceInfo)",
                key="device_id",
                got="none",
            )
        return self

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
