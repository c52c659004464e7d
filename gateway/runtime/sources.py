"""Running sources: one supervised task per `[[sources]]` entry, lending what it owns to the hubs.

A source instance that is a `FrameSource` is attached to the `FrameHub` while it runs; one that is an
`ActuatorProvider` lends its ports (a Modbus bus) to the `ActuatorHub`; one that is a `TagListener`
(a BLE adapter) is handed the `TagHub` to report the residents' tags it hears. Both are detached by identity
when that instance stops, so a restarted source never leaves a dead port behind and a door retrying
a switch-off reaches the instance that replaced it.

The latest instance of each source is kept (`instances`) until the source is stopped, even while the
supervisor waits to restart it: its `device_reports()` (a `DeviceReporter`) then still says which
devices went offline and since when, instead of the devices vanishing from status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.config import driver_registry as registry
from gateway.core import Clock, Record, SourceContext
from gateway.core.actuators import ActuatorHub, ActuatorProvider
from gateway.core.devices import DeviceReport, DeviceReporter
from gateway.core.frames import FrameHub, FrameSource
from gateway.core.persist import KeyValueStore
from gateway.core.source import PacedSource
from gateway.core.tags import TagHub, TagListener
from gateway.runtime.supervisor import ComponentHealth, RestartPolicy, supervise

log = logging.getLogger("lintel.sources")


@dataclass(eq=False)
class Sources:
    """The running sources by id; started and stopped by the runtime (and by a reload)."""

    clock: Clock
    emit: Callable[[Record], bool]
    frames: FrameHub
    actuators: ActuatorHub
    policy: RestartPolicy
    stall_after_s: float
    health: dict[str, ComponentHealth]
    store: KeyValueStore  # what a source keeps across restarts (BLE replay counters)
    emit_many: Callable[[Sequence[Record]], bool] | None = None  # a batch in one pass (a poll's readings)
    secrets: Mapping[str, str] = field(default_factory=dict)  # deployed secrets, for the configs naming them
    tags: TagHub = field(default_factory=TagHub)  # the residents' tags BLE sources listen for (face+tag)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    instances: dict[str, Any] = field(default_factory=dict, init=False)  # each source's latest instance
    group: asyncio.TaskGroup | None = field(default=None, init=False)
    _report_failed: set[str] = field(default_factory=set, init=False)

    def device_reports(self) -> list[DeviceReport]:
        """Every device of every source that reports them, in source order. A source whose report
        raises is skipped and logged once (a status write must never fail for one driver's bug)."""
        reports: list[DeviceReport] = []
        for sid, source in list(self.instances.items()):
            if not isinstance(source, DeviceReporter):
                continue
            try:
                reports.extend(source.device_reports())
            except Exception:
                if sid not in self._report_failed:
                    self._report_failed.add(sid)
                    log.exception("%s: device report failed (skipped from status)", sid)
        return reports

    def start(self, cfg: Any) -> None:
        assert self.group is not None
        self.tasks[cfg.id] = self.group.create_task(self._run(cfg), name=f"source:{cfg.id}")

    async def stop(self, source_ids: list[str], timeout_s: float) -> None:
        """Cancel these sources and wait (bounded) until each has really ended."""
        tasks = [t for sid in source_ids if (t := self.tasks.pop(sid, None)) is not None]
        for sid in source_ids:
            self.health.pop(f"source:{sid}", None)
            self.instances.pop(sid, None)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    async def _run(self, cfg: Any) -> None:
        health = ComponentHealth(f"source:{cfg.id}", stall_after_s=self.stall_after_s, clock=self.clock)
        self.health[health.name] = health
        ctx = SourceContext(
            cfg.id, self.clock, self.emit, health.progress, store=self.store, emit_many=self.emit_many
        )

        async def run_once() -> None:
            source = registry.create_source(cfg.with_secrets(self.secrets))
            self.instances[cfg.id] = source
            if isinstance(source, PacedSource):  # its healthy silence is not a stall
                health.stall_after_s = self.stall_after_s + source.progress_every_s
            ports = source.actuator_ports() if isinstance(source, ActuatorProvider) else {}
            if isinstance(source, FrameSource):
                self.frames.attach(cfg.id, source)
            if isinstance(source, TagListener):
                source.listen_for_tags(self.tags)
            for port_id, port in ports.items():
                self.actuators.attach(port_id, port)
            try:
                await source.run(ctx)
            finally:
                if isinstance(source, FrameSource):
                    self.frames.detach(cfg.id, source)
                for port_id, port in ports.items():
                    self.actuators.detach(port_id, port)

        await supervise(health, run_once, self.policy)
