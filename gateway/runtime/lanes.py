"""The lanes of a running gateway: built from the registry, started, supervised, stopped in order.

A configured lane that cannot be built or started is *unavailable*: it says why once (a log line and
its lane's `unavailable` records, or a `<lane>_unavailable` event) and the rest of the gateway runs.
A component's `run()` is supervised like a source: a crash restarts it with backoff, past the budget
it is parked (`failed`); it never cancels a sibling. The doors are built first, as a core service
handed to every lane as a value (`LaneDeps.doors`). At stop the doors go first and on their own
time: they refuse new pulses at once and switch their relays off for their whole stop budget while
the other lanes stop, in reverse order, within the stage's time (`stop`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable

from gateway.config import GatewayConfig
from gateway.config.lane_registry import LaneSpec, build, configured
from gateway.core import Event
from gateway.core.commands import Handler
from gateway.core.component import Component, Report
from gateway.core.processor import Processor
from gateway.lanes import Lane, LaneDeps
from gateway.lanes.doors import Doors, build_doors, lane_of
from gateway.runtime.supervisor import ComponentHealth, RestartPolicy, supervise

log = logging.getLogger("lintel.lanes")

GATEWAY_SOURCE = "gateway"


class Lanes:
    def __init__(
        self, config: GatewayConfig, deps: LaneDeps, policy: RestartPolicy, health: dict[str, ComponentHealth]
    ):
        self.deps = deps
        self.policy = policy
        self.health = health
        self.lanes: dict[str, Lane] = {}
        self.unavailable: dict[str, str] = {}
        self._running: dict[Component, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self.doors: Doors | None = None
        if config.doors:
            try:
                self.doors = build_doors(config.doors, deps)
                self.lanes["doors"] = lane_of(self.doors)
            except Exception as exc:
                self._unavailable("doors", f"{type(exc).__name__}: {exc}", None)
        self.deps = dataclasses.replace(deps, doors=self.doors)
        for spec in configured(config):
            self._build(spec, config)

    def _build(self, spec: LaneSpec, config: GatewayConfig) -> None:
        try:
            self.lanes[spec.name] = build(spec, config, self.deps)
        except Exception as exc:
            self._unavailable(spec.name, f"{type(exc).__name__}: {exc}", None)

    def _unavailable(self, name: str, reason: str, lane: Lane | None) -> None:
        self.unavailable[name] = reason
        self.health[f"lane:{name}"] = ComponentHealth(
            f"lane:{name}", state="unavailable", last_error=reason, clock=self.deps.clock
        )
        log.error("%s is not running: %s", name, reason)
        records = lane.unavailable(reason) if lane is not None else []
        if not records:
            now = self.deps.clock.time_ms()
            records = [Event(GATEWAY_SOURCE, f"{name}_unavailable", now, {"reason": reason}, "warning")]
        for record in records:
            self.deps.emit(record)

    @property
    def processors(self) -> list[Processor]:
        return [p for lane in self.lanes.values() for p in lane.processors]

    def handlers(self) -> dict[str, Handler]:
        return {name: h for lane in self.lanes.values() for name, h in lane.handlers.items()}

    def checkpoint(self, names: tuple[str, ...]) -> None:
        """Save what successors of these lanes start from (a reload builds them next)."""
        for name in names:
            lane = self.lanes.get(name)
            if lane is not None:
                lane.checkpoint()

    async def start(self, group: asyncio.TaskGroup) -> None:
        """Start every lane's components (doors first), then run each supervised in `group`."""
        self._group = group
        for name, lane in list(self.lanes.items()):
            await self._start_lane(name, lane, group)

    async def _start_lane(self, name: str, lane: Lane, group: asyncio.TaskGroup) -> None:
        try:
            for component in lane.components:
                await component.start()
        except Exception as exc:
            del self.lanes[name]
            for component in lane.components:
                await _quietly(component.stop())
            if self.doors is not None and self.doors in lane.components:
                self.doors = self.deps.doors = None  # the lanes that open doors say they are not running
            self._unavailable(name, str(exc) or type(exc).__name__, lane)
            return
        for component in lane.components:
            health = ComponentHealth(f"lane:{component.name}", clock=self.deps.clock)
            self.health[health.name] = health
            run = supervise(health, component.run, self.policy)
            self._running[component] = group.create_task(run, name=f"lane:{component.name}")

    async def replace(self, rebuilt: dict[str, Lane], removed: list[str]) -> None:
        """Swap in lanes a reload rebuilt or removed: their predecessors stop first."""
        assert self._group is not None
        for name in [*rebuilt, *removed]:
            old = self.lanes.pop(name, None)
            for component in old.components if old is not None else []:
                task = self._running.pop(component, None)
                if task is not None:
                    task.cancel()
                await _quietly(component.stop())
        for name, lane in rebuilt.items():
            self.lanes[name] = lane
            await self._start_lane(name, lane, self._group)

    async def stop(self, timeout_s: float) -> None:
        """Stop every started component within `timeout_s`, the doors' switch-off beside the rest.

        Fail safe first: the doors' stop starts at once (it refuses new pulses, cancels running ones
        and retries the switch-off) and runs for its own whole budget (`stop_budget_s`), never a
        share, while the other components stop one after another, last started first (the analytics
        before what feeds them). Each of those gets what is left of `timeout_s` divided by the
        number still to stop, so one that stops at once leaves its time to the next. The stage
        ends when both are done; the doors' budget fits in it (`runtime.shutdown_timeout_s` is
        checked against it where doors are configured)."""
        running, self._running = self._running, {}
        doors = self._stop_doors(running)
        deadline = self.deps.clock.monotonic() + timeout_s
        others = list(reversed(running.items()))
        for index, (component, task) in enumerate(others):
            share = max(0.0, deadline - self.deps.clock.monotonic()) / (len(others) - index)
            await _stop_component(component, task, share)
        if doors is not None:
            await doors

    def _stop_doors(self, running: dict[Component, asyncio.Task[None]]) -> asyncio.Task[None] | None:
        """Take the doors out of `running` and start their stop now, as its own task."""
        doors = self.doors
        if doors is None or doors not in running:
            return None
        running.pop(doors).cancel()  # no more retry loop: the stop retries from here on
        doors.refuse_pulses()  # now, before any other lane is told to stop
        backstop = doors.timing.stop_budget_s + STOP_BACKSTOP_S
        return asyncio.get_running_loop().create_task(
            _stop_component(doors, None, backstop), name="lane:doors:stop"
        )

    def reports(self) -> dict[str, Report]:
        return {
            component.name: component.report()
            for lane in self.lanes.values()
            for component in lane.components
        }


STOP_BACKSTOP_S = 1.0  # beyond its own budget, a door stop is cut only if a write hangs past it


async def _stop_component(component: Component, task: asyncio.Task[None] | None, limit_s: float) -> None:
    """End a component's run task, then bring it to its safe state within `limit_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    if task is not None:
        task.cancel()  # its work ends first, then it is brought to its safe state
        await asyncio.wait([task], timeout=limit_s / 2)
    try:
        await asyncio.wait_for(component.stop(), max(0.0, deadline - loop.time()))
    except TimeoutError:  # e.g. a door relay that cannot be reached: a state, not a bug
        log.warning("%s did not stop within %.1f s: %s", component.name, limit_s, _why_unsafe(component))
    except Exception:
        log.exception("%s did not stop cleanly", component.name)


async def _quietly(stop: Awaitable[None]) -> None:
    try:
        await stop
    except Exception:
        log.debug("stop after a failed start raised", exc_info=True)


def _why_unsafe(component: Component) -> str:
    """What the component's report says is not safe (doors: each door's relay state and fault)."""
    try:
        doors = getattr(component.report(), "doors", ())
    except Exception:  # a report is only a courtesy here
        doors = ()
    unsafe = [f"{d.id} relay {d.relay} ({d.fault})" for d in doors if d.relay != "released"]
    return "; ".join(unsafe) or "cut short"
