"""The `modbus` source: one scheduler per physical bus, polling every meter on it.

The schedule is a set of (meter, poll group) jobs, each on its own fixed grid (`start + k·interval`):
the earliest due job runs next, so a slow exchange delays the jobs behind it but never moves their
grid; a job whose slot passed while the line was busy runs once, late, and its missed slots are
counted (`missed_polls`), never run back to back.

When the port disappears (USB adapter unplugged, TCP gateway rebooted) every meter goes offline with
reason `disconnected`, and the port is reopened with backoff inside the source: the daemon sees a
healthy source that reports progress, and the meters come back one by one as they answer.

The bus is lent to actuators (door relays) through `actuator_ports()`: the runtime puts it in its
`ActuatorHub` while this instance runs, so a relay write takes its turn between meter reads.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging

from drivers.modbus.bus import Bus, BusDown
from drivers.modbus.config import ModbusBusConfig
from drivers.modbus.meter import MeterPoller, PollGroup
from gateway.core import Backoff, Event, SourceContext, next_deadline, raise_if_cancelled
from gateway.core.devices import DeviceReport, PointMemory

log = logging.getLogger("lintel.modbus")


IDLE_BEAT_S = 1.0  # how often a bus with nothing to poll tells the watchdog it is alive


class ModbusBusSource:
    def __init__(self, config: ModbusBusConfig) -> None:
        self.config = config
        self.endpoint = config.parsed_endpoint
        self.meters = [MeterPoller(m, config) for m in config.meters if m.enabled]
        self.bus = Bus(self.endpoint, turnaround_s=config.turnaround_ms / 1000)
        self.missed_polls = 0
        self._down_reported = False
        self.memory = PointMemory()  # latest values and offline episodes, per meter

    def device_reports(self) -> list[DeviceReport]:
        """Each meter's health: online, its errors by reason (timeout, exception, crc,
        disconnected...), when it last answered, its latest values."""
        return [
            DeviceReport(
                m.id,
                self.config.id,
                "meter",
                m.online,
                self.memory.last_reading_ms.get(m.id),
                self.memory.offline_since_ms.get(m.id) if m.online is False else None,
                dict(m.errors),
                sum(m.errors.values()),  # every reason counted there is a failed exchange
                self.memory.points(m.id),
                m.last_error or None,
            )
            for m in self.meters
        ]

    @property
    def progress_every_s(self) -> float:
        """Progress is reported after each poll job (`PacedSource`), so a healthy bus is quiet for
        at most its most frequent job's interval (a bus whose meters all poll every 5 minutes is
        quiet for 5 minutes; one more meter polled every 10 s makes it 10 s)."""
        return min((g.interval_s for m in self.meters for g in m.groups), default=0.0)

    def actuator_ports(self) -> dict[str, Bus]:
        """The bus, lent to door relays under this source's id."""
        return {self.config.id: self.bus}

    async def run(self, ctx: SourceContext) -> None:
        try:
            await self._run(self.memory.tap(ctx))
        finally:
            self.bus.close()

    async def _run(self, ctx: SourceContext) -> None:
        clock = ctx.clock
        await self._open(ctx)
        start = clock.monotonic()
        order = itertools.count()
        jobs: list[tuple[float, int, MeterPoller, PollGroup]] = []
        # Every job starts on the same grid: a cycle is the meters read back to back, in config order.
        for meter in self.meters:
            for group in meter.groups:
                heapq.heappush(jobs, (start, next(order), meter, group))
        while not jobs:  # every meter disabled: the bus stays open for its door relays, and alive
            ctx.progress()
            await asyncio.sleep(IDLE_BEAT_S)
        while True:
            due, _, meter, group = heapq.heappop(jobs)
            now = clock.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
                now = clock.monotonic()
            if meter.breaker_allows(now):
                try:
                    records = await meter.poll(self.bus, group, clock.time_ms, now)
                    # pymodbus awaits each answer with asyncio.wait_for, which on Python 3.11 drops a
                    # cancel that coincides with the answer; without this check a stopping gateway
                    # polled on at full speed (the check lives here, not in Bus: a relay switched off
                    # from a cancelled door task must still complete its write and read-back).
                    raise_if_cancelled()
                except BusDown as exc:
                    heapq.heappush(jobs, (due, next(order), meter, group))  # retry this job first
                    self._bus_down(ctx, str(exc))
                    await self._open(ctx)
                    continue
                for record in records:
                    ctx.emit(record)
            ctx.progress()
            due, skipped = next_deadline(due, group.interval_s, clock.monotonic())
            self.missed_polls += skipped
            heapq.heappush(jobs, (due, next(order), meter, group))

    def _bus_down(self, ctx: SourceContext, reason: str) -> None:
        self.bus.close()
        now_ms = ctx.clock.time_ms()
        for meter in self.meters:
            for record in meter.mark_bus_down(reason, now_ms):
                ctx.emit(record)

    async def _open(self, ctx: SourceContext) -> None:
        """Open the bus, retrying with backoff for as long as it takes; report progress meanwhile."""
        # A serial port is a local open(): retry it every second so a replugged adapter is back at
        # once. A TCP gateway is a shared server: back off with jitter, up to 30 s.
        serial = self.endpoint.kind == "rtu"
        backoff = Backoff(initial_s=1.0, max_s=30.0)
        while True:
            try:
                await self.bus.open()
                raise_if_cancelled()  # Bus.open awaits asyncio.wait_for too
            except BusDown as exc:
                if not self._down_reported:
                    log.warning("%s: bus unavailable, retrying with backoff: %s", self.config.id, exc)
                    ctx.emit(
                        Event(
                            self.config.id,
                            "bus_unavailable",
                            ctx.clock.time_ms(),
                            {"error": str(exc)},
                            "warning",
                        )
                    )
                    self._down_reported = True
                    self._bus_down(ctx, str(exc))
                ctx.progress()
                await asyncio.sleep(1.0 if serial else backoff.next_delay())
                continue
            if self._down_reported:
                log.info("%s: bus available again (%s)", self.config.id, self.endpoint)
                ctx.emit(
                    Event(
                        self.config.id, "bus_available", ctx.clock.time_ms(), {"endpoint": str(self.endpoint)}
                    )
                )
                self._down_reported = False
            return
