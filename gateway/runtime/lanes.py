"""The lanes of a running gateway: built from the registry, started, supervised, stopped in order.

A configured lane that cannot be built or started is *unavailable*: it says why once (a log line and
its lane's `unavailable` records, or a `<lane>_unavailable` event) and the rest of the gateway runs.
A component's `run()` is supervised like a source: a crash restarts it with backoff, past the budget
it is parked (`failed`); it never cancels a sibling. The doors are built first, as a core service
handed to every lane as a value (`LaneDeps.doors`); lanes stop in reverse order, so the analytics
stop opening doors before the doors release their relays.
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
        """Stop every started component, last started first, each within a share of `timeout_s`."""
        running, self._running = self._running, {}
        share = max(1.5, timeout_s / max(1, len(running)))  # doors need a few switch-off tries
        for component, task in reversed(running.items()):
            task.cancel()  # its work ends first, then it is brought to its safe state
            await asyncio.wait([task], timeout=share / 2)
            try:
                await asyncio.wait_for(component.stop(), share)
            except Exception:
                log.exception("%s did not stop cleanly", component.name)

    def reports(self) -> dict[str, Report]:
        return {
            component.name: component.report()
            for lane in self.lanes.values()
            for component in lane.components
        }


async def _quietly(stop: Awaitable[None]) -> None:
    try:
        await stop
    except Exception:
        log.debug("stop after a failed start raised", exc_info=True)
