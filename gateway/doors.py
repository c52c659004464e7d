"""Doors the gateway can open: `[[doors]]` with a relay, pulsed for a few seconds.

Today a relay is a Modbus coil on the bus of a running `modbus` source, so the write takes its
turn in that bus's scheduler between meter reads (never a second client on the same wire). The
face access lane pulses the same doors on a grant; the `door_pulse` command does it on request.

Safety: a door is never left held open. If switching the relay on fails, it is switched off again
(best effort) and the pulse reports failure. If switching off fails, it is retried; if it still
fails, a `door_relay_fault` alarm says the relay may be stuck on. Pulses of one door never overlap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from gateway.core import Clock, Event, Record
from gateway.core.config_base import Identifier, StrictModel

log = logging.getLogger("lintel.doors")

OFF_ATTEMPTS = 3


class ModbusCoilRelay(StrictModel):
    type: Literal["modbus_coil"]
    bus: Identifier = Field(description="Id of the [[sources]] modbus bus the relay module is on.")
    unit: int = Field(ge=1, le=247, description="Modbus unit id of the relay module.")
    coil: int = Field(ge=0, le=65_535, description="Coil address of this door's relay.")
    timeout_ms: int = Field(500, ge=10, le=10_000, description="Reply timeout for the relay writes.")


class DoorConfig(StrictModel):
    id: Identifier = Field(description="Door id, used by door_pulse and in access events.")
    pulse_s: float = Field(3, gt=0, le=30, description="How long the relay stays on for one opening.")
    relay: ModbusCoilRelay


class DoorError(Exception):
    """A pulse did not happen, or did not end cleanly (the message says which)."""


class Doors:
    def __init__(self, doors: list[DoorConfig], clock: Clock, emit: Callable[[Record], object]) -> None:
        self.doors = {d.id: d for d in doors}
        self.clock = clock
        self.emit = emit
        self._locks: dict[str, asyncio.Lock] = {}
        self.pulses = 0
        self.failures = 0

    def __contains__(self, door_id: str) -> bool:
        return door_id in self.doors

    def busy(self, door_id: str) -> bool:
        """True while a pulse of this door is under way (the door is open already)."""
        lock = self._locks.get(door_id)
        return lock is not None and lock.locked()

    async def pulse(self, door_id: str, pulse_s: float | None = None, **attrs: Any) -> dict[str, Any]:
        """Open `door_id` for `pulse_s` (default: the door's); raises DoorError on failure."""
        door = self.doors[door_id]
        seconds = pulse_s if pulse_s is not None else door.pulse_s
        lock = self._locks.setdefault(door_id, asyncio.Lock())
        async with lock:
            return await self._pulse(door, seconds, attrs)

    async def _pulse(self, door: DoorConfig, seconds: float, attrs: dict[str, Any]) -> dict[str, Any]:
        from drivers.modbus.source import running_bus  # the modbus lane owns the wire

        relay = door.relay
        bus = running_bus(relay.bus)
        if bus is None:
            self.failures += 1
            raise DoorError(f"bus {relay.bus} is not running: cannot reach the relay of {door.id}")
        timeout = relay.timeout_ms / 1000
        started = time.monotonic()
        try:
            await bus.write_coil(relay.unit, relay.coil, True, timeout_s=timeout, retries=1)
        except Exception as exc:
            self.failures += 1
            await self._switch_off(door, bus, timeout)
            raise DoorError(f"relay of {door.id} did not switch on: {exc}") from None
        on_ms = round((time.monotonic() - started) * 1000)
        try:
            await asyncio.sleep(seconds)
        finally:
            off_ok = await self._switch_off(door, bus, timeout)
        if not off_ok:
            self.failures += 1
            raise DoorError(f"relay of {door.id} did not switch off: it may be stuck on")
        self.pulses += 1
        body = {"door": door.id, "pulse_s": seconds, "switch_on_ms": on_ms, **attrs}
        self.emit(Event(door.id, "door_pulsed", self.clock.time_ms(), body))
        return body

    async def _switch_off(self, door: DoorConfig, bus: Any, timeout: float) -> bool:
        relay = door.relay
        last: Exception | None = None
        for _ in range(OFF_ATTEMPTS):
            try:
                await bus.write_coil(relay.unit, relay.coil, False, timeout_s=timeout, retries=1)
                return True
            except Exception as exc:
                last = exc
                await asyncio.sleep(0.2)
        log.error("door %s: relay did not switch off after %d attempts: %s", door.id, OFF_ATTEMPTS, last)
        attrs = {
            "door": door.id,
            "bus": relay.bus,
            "unit": relay.unit,
            "coil": relay.coil,
            "error": str(last),
        }
        self.emit(Event(door.id, "door_relay_fault", self.clock.time_ms(), attrs, "alarm"))
        return False
