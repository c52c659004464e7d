"""Relays a door can be wired to, behind one small interface.

A `Relay` switches one strike on or off and, where the hardware can time a pulse itself, starts a
pulse that ends without us (`timed_pulse`): a board that switches itself off is the only protection
against a gateway killed mid-pulse. Every write goes through the port that is current *now*: a
Modbus relay asks the `ActuatorHub` for its bus at each call, so a retry after the bus source
restarted reaches the new bus instance.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.core.actuators import ActuatorHub
from gateway.lanes.doors.config import ModbusCoilRelay


class RelayError(Exception):
    """A write to a relay failed (the message says why)."""


class Relay(Protocol):
    @property
    def hardware_timed(self) -> bool:
        """True when `timed_pulse` ends the pulse in the hardware itself."""
        ...

    async def switch(self, on: bool) -> None:
        """Energise or release the relay; raises RelayError."""
        ...

    async def timed_pulse(self, seconds: float) -> None:
        """Switch on for `seconds`, switched off by the hardware; raises RelayError (or
        NotImplementedError where `hardware_timed` is False)."""
        ...

    def wiring(self) -> dict[str, Any]:
        """Where the relay is, for fault reports."""
        ...


class ModbusRelay:
    """A coil of a Modbus relay module on a running `modbus` bus, reached through the hub."""

    def __init__(self, config: ModbusCoilRelay, hub: ActuatorHub) -> None:
        self.config = config
        self.hub = hub

    @property
    def hardware_timed(self) -> bool:
        return self.config.flash is not None

    def _port(self) -> Any:
        port = self.hub.get(self.config.bus)
        if port is None:
            raise RelayError(f"bus {self.config.bus} is not running")
        return port

    async def switch(self, on: bool) -> None:
        cfg = self.config
        try:
            await self._port().write_coil(cfg.unit, cfg.coil, on, timeout_s=cfg.timeout_ms / 1000, retries=1)
        except RelayError:
            raise
        except Exception as exc:
            raise RelayError(str(exc) or type(exc).__name__) from None

    async def timed_pulse(self, seconds: float) -> None:
        cfg = self.config
        if cfg.flash is None:
            raise NotImplementedError("this relay has no hardware-timed pulse")
        steps = max(1, min(cfg.flash.max_steps, round(seconds * 1000 / cfg.flash.unit_ms)))
        try:
            await self._port().write_coil_word(
                cfg.unit, cfg.flash.address_base + cfg.coil, steps, timeout_s=cfg.timeout_ms / 1000
            )
        except RelayError:
            raise
        except Exception as exc:
            raise RelayError(str(exc) or type(exc).__name__) from None

    def wiring(self) -> dict[str, Any]:
        return {
            "type": "modbus_coil",
            "bus": self.config.bus,
            "unit": self.config.unit,
            "coil": self.config.coil,
        }
