"""The doors component: pulses door strikes and guarantees they end released.

Fail-safe contract (README "Doors fail safe"; each clause has a test):
1. While the gateway runs, a relay is never energised longer than its pulse + `margin_s`: a pulse's
   switch-off that fails is retried every `retry_s` until it succeeds.
2. On start, every configured relay is switched off before anything can pulse it; a door whose
   relay could not be switched off yet refuses pulses ("relay state unknown") and keeps retrying.
3. On stop and on reload, `stop()` / `make_safe()` cancel running pulses and switch every relay off,
   retrying for their whole `stop_budget_s`; the runtime awaits them *before* any bus the relays
   sit on is stopped, and at stop runs them first (`refuse_pulses`) and beside the other lanes'
   stops, never cutting them short for those.
4. A switch-off is retried through whichever bus instance is current (the hub is asked each time).
   If a relay is still not released `fault_after_s` after the first failed attempt (at start,
   when its state is only unknown, `start_grace_s`: the bus may still be connecting), one
   `door_relay_fault` alarm is raised for the episode (emitted before the outbox closes, also during
   shutdown), whose `relay_state` says `energised` (may be stuck on) or `unknown` (not reached since
   start); `door_relay_recovered` follows when a later attempt succeeds. A stop or reload that
   cannot reach a relay it never switched on (state still unknown) tries, warns, raises nothing.
5. Where the relay times the pulse itself (`Relay.hardware_timed`), the pulse is started that way,
   so a killed gateway cannot hold a door open; the software switch-off still follows as a backstop.

Pulses of one door never overlap; every pulse runs as a task the component owns (never an orphan).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from gateway.core import Clock, Event, Record
from gateway.core.commands import Caller, Failed, Handler, Rejected
from gateway.lanes import DoorError, Lane, LaneDeps
from gateway.lanes.doors.config import DOOR_STOP_BUDGET_S, DoorConfig
from gateway.lanes.doors.relays import Relay, RelayDisagrees, RelayError
from gateway.lanes.doors.report import DoorReport, DoorsReport, render
from gateway.lanes.doors.switch_off import Door, DoorTimings, raise_fault, switch_off
from gateway.lanes.doors.wiring import build_relay

log = logging.getLogger("lintel.doors")


class Doors:
    """The `doors` component. Relays come built (see wiring.build_relay); `emit` takes records."""

    name = "doors"

    def __init__(
        self,
        doors: list[DoorConfig],
        relays: dict[str, Relay],
        clock: Clock,
        emit: Callable[[Record], object],
        *,
        margin_s: float = 0.5,
        retry_s: float = 0.25,
        fault_after_s: float = 1.0,
        start_grace_s: float = 15.0,
        stop_budget_s: float = DOOR_STOP_BUDGET_S,
    ) -> None:
        self.clock = clock
        self.emit = emit
        self.timing = DoorTimings(margin_s, retry_s, fault_after_s, start_grace_s, stop_budget_s)
        self._doors = {d.id: Door(d, relays[d.id]) for d in doors}
        self._pulses: set[asyncio.Task[dict[str, Any]]] = set()
        self._closing = False
        self._wake = asyncio.Event()

    # -- what other parts use ---------------------------------------------------------------------
    def __contains__(self, door_id: str) -> bool:
        return door_id in self._doors

    @property
    def ids(self) -> list[str]:
        return sorted(self._doors)

    def busy(self, door_id: str) -> bool:
        """True while a pulse of this door is under way (the door is open already)."""
        door = self._doors.get(door_id)
        return door is not None and door.lock.locked()

    def tune(self, doors: list[DoorConfig]) -> None:
        """Apply new door timings (`pulse_s`) from a reload; wiring changes need a restart."""
        for cfg in doors:
            door = self._doors.get(cfg.id)
            if door is not None and cfg.relay == door.config.relay:
                door.config = cfg

    async def pulse(self, door_id: str, pulse_s: float | None = None, **attrs: Any) -> dict[str, Any]:
        """Open `door_id` for `pulse_s` (default: the door's); raises DoorError on failure.

        The pulse runs as a task of this component: cancelling the caller does not cut it short,
        and `stop()` ends it with the relay released."""
        door = self._doors[door_id]
        if self._closing:
            raise DoorError(f"door {door_id}: the gateway is stopping")
        if door.state in ("unknown", "releasing"):
            raise DoorError(f"door {door_id}: relay state unknown (not yet switched off: {door.last_error})")
        seconds = pulse_s if pulse_s is not None else door.config.pulse_s
        task = asyncio.get_running_loop().create_task(self._locked_pulse(door, seconds, attrs))
        self._pulses.add(task)
        task.add_done_callback(self._pulses.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if task.cancelled() and not (caller is not None and caller.cancelling()):
                why = "the gateway is stopping" if self._closing else "a reload restarted its bus"
                # Say what is known now: the cut pulse's own switch-off may not have reached the
                # relay (the stop or reload keeps retrying it).
                relay = (
                    "relay released"
                    if door.state == "released"
                    else "relay not released yet (the switch-off is being retried)"
                )
                raise DoorError(f"door {door_id}: pulse cut short, {relay} ({why})") from None
            raise

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Switch every relay off (clause 2). Doors that fail keep retrying in `run()`."""
        await asyncio.gather(*(self._release(door) for door in self._doors.values()))

    async def run(self) -> None:
        """Clause 1 and 4: release relays past their deadline; retry pending switch-offs."""
        while True:
            now = self.clock.monotonic()
            for door in self._doors.values():
                overdue = door.energised_until is not None and now > door.energised_until
                # Overdue: a pulse still holds the lock past its deadline (its switch-off hung):
                # release anyway; the pulse's own switch-off will find the relay released.
                if door.state in ("unknown", "releasing") or overdue:
                    await self._release(door)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.timing.retry_s)

    def refuse_pulses(self) -> None:
        """From now on every pulse is refused ("the gateway is stopping"): the first step of a stop,
        taken by the runtime before it stops the lanes that open doors."""
        self._closing = True

    async def stop(self) -> None:
        """Clause 3: end every pulse and release every relay, within `stop_budget_s`. A relay
        still energised when the stop ends (or is cut short by the runtime's backstop) raises
        its `door_relay_fault` now, while the outbox can still commit it."""
        self.refuse_pulses()
        try:
            await self.make_safe()
        finally:
            for door in self._doors.values():
                if door.state in ("energised", "releasing"):
                    raise_fault(door, self.clock, self.emit)

    async def make_safe(self) -> None:
        """Cancel running pulses and switch every relay off (before a reload restarts a bus).

        Takes `stop_budget_s` at most, all of it if needed: the cancelled pulses' own switch-offs
        and then a retry every `retry_s` until every relay is released; an attempt still in flight
        at the deadline is abandoned (the relay's state is then said, below)."""
        for task in list(self._pulses):
            task.cancel()
        deadline = self.clock.monotonic() + self.timing.stop_budget_s
        pending = list(self._doors.values())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timing.stop_budget_s):
                if self._pulses:
                    await asyncio.wait(list(self._pulses))
                while pending:
                    await asyncio.gather(*(self._release(door) for door in pending))
                    pending = [d for d in pending if d.state != "released"]
                    if not pending or self.clock.monotonic() >= deadline:
                        break
                    await asyncio.sleep(self.timing.retry_s)
        pending = [d for d in pending if d.state != "released"]
        for door in pending:
            if door.state == "unknown":
                # Never switched on by this gateway (pulses wait for a first switch-off) and never
                # reached: not stuck on. Its start-up alarm follows the run loop's start_grace_s.
                log.warning(
                    "door %s: relay state unknown %s (not switched on since start; "
                    "the switch-off did not reach it: %s)",
                    door.config.id,
                    "at stop" if self._closing else "before the reload",
                    door.last_error,
                )
            else:  # energised by us and still not released: say so now, whatever fault_after_s says
                raise_fault(door, self.clock, self.emit)

    def report(self) -> DoorsReport:
        doors = tuple(
            DoorReport(
                d.config.id,
                d.state,
                d.pulses,
                d.failures,
                d.relay.hardware_timed,
                d.last_error if d.state != "released" else None,
            )
            for d in self._doors.values()
        )
        return DoorsReport(sum(d.pulses for d in doors), sum(d.failures for d in doors), doors)

    def handlers(self) -> dict[str, Handler]:
        async def door_pulse(args: dict[str, Any], caller: Caller) -> dict[str, Any]:
            door = args["door"]
            if door not in self._doors:
                known = ", ".join(self.ids) or "none"
                raise Rejected(f"unknown door: {door} (configured: {known})")
            try:
                return await self.pulse(door, args.get("pulse_s"), by=caller.by, via=caller.origin)
            except DoorError as exc:
                raise Failed(str(exc)) from None

        return {"door_pulse": door_pulse}

    # -- inside -----------------------------------------------------------------------------------
    async def _locked_pulse(self, door: Door, seconds: float, attrs: dict[str, Any]) -> dict[str, Any]:
        async with door.lock:
            return await self._pulse(door, seconds, attrs)

    async def _pulse(self, door: Door, seconds: float, attrs: dict[str, Any]) -> dict[str, Any]:
        started = self.clock.monotonic()
        # The deadline is set before the write: if the write lands but its answer is lost, the run
        # loop still releases the relay in time.
        door.energised_until = started + seconds + self.timing.margin_s
        door.state = "energised"
        try:
            if door.relay.hardware_timed:
                await door.relay.timed_pulse(seconds)
            else:
                await door.relay.switch(True)
        except RelayError as exc:
            door.failures += 1
            if isinstance(exc, RelayDisagrees):
                # Acknowledged, then denied by its own status: the door did not open although the
                # device said it would. An alarm, one per such pulse (not a retryable hiccup).
                log.error("door %s: %s", door.config.id, exc)
                attrs = {"door": door.config.id, **door.relay.wiring(), "error": str(exc)}
                self.emit(Event(door.config.id, "door_relay_fault", self.clock.time_ms(), attrs, "alarm"))
            await self._release(door)
            raise DoorError(f"relay of {door.config.id} did not switch on: {exc}") from None
        on_ms = round((self.clock.monotonic() - started) * 1000)
        try:
            await asyncio.sleep(max(0.0, seconds - (self.clock.monotonic() - started)))
        finally:
            released = await self._release(door)
        if not released:
            door.failures += 1
            raise DoorError(f"relay of {door.config.id} did not switch off: it may be stuck on")
        door.pulses += 1
        body = {"door": door.config.id, "pulse_s": seconds, "switch_on_ms": on_ms, **attrs}
        if door.relay.hardware_timed:
            body["hardware_timed"] = True
        self.emit(Event(door.config.id, "door_pulsed", self.clock.time_ms(), body))
        return body

    async def _release(self, door: Door) -> bool:
        """One switch-off attempt; a failure wakes the run loop to retry (clause 4)."""
        if await switch_off(door, self.timing, self.clock, self.emit):
            return True
        if door.state != "released":
            self._wake.set()
        return False


REPORT = DoorsReport  # the type of this lane's report (status.json is read back into it)
__all__ = ["REPORT", "DoorReport", "Doors", "DoorsReport", "build_doors", "lane_of", "render"]


def build_doors(doors: list[DoorConfig], deps: LaneDeps) -> Doors:
    """The doors component for a validated `[[doors]]` list (the runtime builds it before any lane,
    and hands it to the lanes as `LaneDeps.doors`)."""
    relays = {d.id: build_relay(d.relay, deps.actuators, password=_password(d.relay, deps)) for d in doors}
    return Doors(doors, relays, deps.clock, deps.emit)


def lane_of(doors: Doors) -> Lane:
    """The doors as the runtime drives them: one component; `door_pulse` is its command."""
    return Lane("doors", [doors], handlers=doors.handlers())


def _password(relay: Any, deps: LaneDeps) -> str | None:
    """A relay's password, read once at start (a changed password file needs a restart)."""
    return deps.secret(getattr(relay, "password_file", None), getattr(relay, "password_secret", None))
