"""One door as the doors component knows it, and one switch-off attempt (clause 4 of the contract
in `gateway.lanes.doors.lane`).

A `Door` holds what is known of its relay: released, energised (by this gateway), releasing (a
switch-off of an energised relay is being retried) or unknown (not reached since start). A failed
`switch_off` starts an episode; past `fault_after_s` (`start_grace_s` while the state is only
unknown) `raise_fault` emits one `door_relay_fault` for it, saying which of the two it is; the next
success ends the episode (`mark_released`, with `door_relay_recovered` after a fault).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.core import Clock, Event, Record
from gateway.lanes.doors.config import DoorConfig
from gateway.lanes.doors.relays import Relay, RelayError

log = logging.getLogger("lintel.doors")


@dataclass(frozen=True, slots=True)
class DoorTimings:
    """How the doors keep their fail-safe contract (module docstring, clauses 1-4)."""

    margin_s: float  # a pulse's relay is released by pulse_s + margin_s at the latest
    retry_s: float  # a failed switch-off is retried this often
    fault_after_s: float  # a relay not released this long after the first failure is a fault
    start_grace_s: float  # ... or this long at start, while its state is only unknown
    stop_budget_s: float  # stop() / make_safe() releases every relay within this


@dataclass(slots=True)
class Door:
    """One configured door: its relay and what is known of it (the state, the failing episode)."""

    config: DoorConfig
    relay: Relay
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    state: str = "unknown"  # released, energised, releasing, unknown
    energised_until: float | None = None  # monotonic deadline (pulse end + margin) while energised
    failing_since: float | None = None  # first failed switch-off of this episode
    fault_raised: bool = False
    last_error: str | None = None
    pulses: int = 0
    failures: int = 0


async def switch_off(door: Door, timing: DoorTimings, clock: Clock, emit: Callable[[Record], object]) -> bool:
    """One switch-off attempt (two quick tries); True when the relay is known released. A failure
    starts or continues the door's episode and raises its fault once the episode is too long."""
    last = ""
    for attempt in range(2):
        try:
            await door.relay.switch(False)
        except RelayError as exc:
            last = str(exc)
            if attempt == 0:
                await asyncio.sleep(0.05)
            continue
        mark_released(door, clock, emit)
        return True
    if door.state == "released":
        return False  # known released already: a failed extra switch-off changes nothing
    if door.state == "energised":
        door.state = "releasing"
    now = clock.monotonic()
    door.last_error = last
    # A relay known energised is a fault after fault_after_s. At start the state is only
    # unknown (the bus may still be connecting): give it start_grace_s before alarming.
    allowed = timing.fault_after_s if door.state == "releasing" else timing.start_grace_s
    if door.failing_since is None:
        door.failing_since = now
        if door.state == "releasing":
            log.warning("door %s: relay did not switch off (%s); retrying", door.config.id, last)
    if now - door.failing_since >= allowed:
        raise_fault(door, clock, emit)
    return False


def mark_released(door: Door, clock: Clock, emit: Callable[[Record], object]) -> None:
    """The relay is known released: the episode ends (`door_relay_recovered` if it had a fault)."""
    was_failing = door.failing_since is not None
    door.state = "released"
    door.energised_until = None
    door.failing_since = None
    door.last_error = None
    if door.fault_raised:
        door.fault_raised = False
        log.info("door %s: relay released again", door.config.id)
        attrs = {"door": door.config.id, **door.relay.wiring()}
        emit(Event(door.config.id, "door_relay_recovered", clock.time_ms(), attrs))
    elif was_failing:
        log.info("door %s: relay released on retry", door.config.id)


def raise_fault(door: Door, clock: Clock, emit: Callable[[Record], object]) -> None:
    """One `door_relay_fault` per episode, saying what is known: a relay this gateway energised
    and could not release may be stuck on; one it has not reached since it started (clause 4's
    start-up alarm) is in an unknown state, which after a kill -9 mid-pulse may really be on."""
    if door.fault_raised:
        return
    door.fault_raised = True
    relay_state = "unknown" if door.state == "unknown" else "energised"
    summary = FAULT_SUMMARY[relay_state]
    log.error("door %s: relay %s; the switch-off failed: %s", door.config.id, summary, door.last_error)
    attrs = {
        "door": door.config.id,
        **door.relay.wiring(),
        "error": door.last_error,
        "relay_state": relay_state,
        "summary": summary,
    }
    emit(Event(door.config.id, "door_relay_fault", clock.time_ms(), attrs, "alarm"))


# What a `door_relay_fault` tells the technician, by the relay's state when it was raised.
FAULT_SUMMARY = {
    "energised": "energised by this gateway and not released: it may be stuck on",
    "unknown": "not reached since the gateway started: state unknown (it may be on if the gateway "
    "stopped mid-pulse)",
}
