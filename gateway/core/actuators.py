"""Actuator ports: how a bus driver lends its wire to the doors without either knowing the other.

A driver whose source owns a wire that relays sit on (a Modbus bus) implements `ActuatorProvider`:
`actuator_ports()` names the ports it lends, by id (the source id). The runtime attaches them to the
`ActuatorHub` while that source instance runs and detaches them, by identity, when it stops, exactly
as `FrameHub` serves cameras. A door asks the hub for the *current* port at every write, so a switch-off
that failed on a bus instance that stopped is retried on the instance that replaced it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from gateway.core.hub import Hub


class CoilPort(Protocol):
    """A wire on which relay coils can be written (one Modbus bus: serial line or TCP gateway)."""

    async def write_coil(
        self, unit: int, address: int, value: bool, *, timeout_s: float, retries: int = 0, verify: bool = True
    ) -> None:
        """Set one coil; raises when the write (or its read-back) failed."""
        ...

    async def write_coil_word(self, unit: int, address: int, word: int, *, timeout_s: float) -> None:
        """Function 05 with a raw 16-bit value: relay boards' timed 'flash' commands use it."""
        ...


@runtime_checkable
class ActuatorProvider(Protocol):
    def actuator_ports(self) -> dict[str, CoilPort]:
        """The ports this running source lends to actuators, by port id."""
        ...


class ActuatorHub(Hub[CoilPort]):
    """Ports of running sources by id. Owned by the runtime; used by the doors on the event loop."""
