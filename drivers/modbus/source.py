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


class _Jobs:
    """The poll jobs of one bus, earliest due first, each (meter, poll group) on its own grid.

    A job is taken by one worker at a time, and so is its meter: two poll groups of one meter are never
    polled at once (a meter is one device answering one request at a time). `take` waits for a job
    whose meter is free; `give_back` returns it with its next due time and frees the meter.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, MeterPoller, PollGroup]] = []
        self._order = itertools.count()
        self._busy: set[str] = set()
        self._changed = asyncio.Event()

    def __bool__(self) -> bool:
        return bool(self._heap)

    def push(self, due: float, meter: MeterPoller, group: PollGroup) -> None:
        heapq.heappush(self._heap, (due, next(self._order), meter, group))

    async def take(self) -> tuple[float, MeterPoller, PollGroup]:
        while True:
            skipped = []
            found = None
            while self._heap:
                item = heapq.heappop(self._heap)
                if item[2].id in self._busy:
                    skipped.append(item)
                    continue
                found = item
                break
            for item in skipped:
                heapq.heappush(self._heap, item)
            if found is not None:
                self._busy.add(found[2].id)
                return found[0], found[2], found[3]
            self._changed.clear()
            await self._changed.wait()

    def give_back(self, due: float, meter: MeterPoller, group: PollGroup) -> None:
        self.push(due, meter, group)
        self.release(meter)

    def release(self, meter: MeterPoller) -> None:
        self._busy.discard(meter.id)
        self._changed.set()


class ModbusBusSource:
    def __init__(self, config: ModbusBusConfig) -> None:
        self.config = config
        self.endpoint = config.parsed_endpoint
        self.meters = [MeterPoller(m, config) for m in config.meters if m.enabled]
        self.bus = Bus(
            self.endpoint, turnaround_s=config.turnaround_ms / 1000, max_inflight=config.max_inflight
        )
        self.missed_polls = 0
        self._down_reported = False
        self.memory = PointMemory()  # latest values and offline episodes, per meter
        self._opened = 0  # how many times the bus was opened: workers reopen it once per failure
        self._reopen_lock = asyncio.Lock()

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
        await self._open(ctx)
        start = ctx.clock.monotonic()
        jobs = _Jobs()
        # Every job starts on the same grid: a cycle is the meters read back to back, in config order.
        for meter in self.meters:
            for group in meter.groups:
                jobs.push(start, meter, group)
        while not jobs:  # every meter disabled: the bus stays open for its door relays, and alive
            ctx.progress()
            await asyncio.sleep(IDLE_BEAT_S)
        workers = min(self.config.max_inflight, len(self.meters))
        if workers == 1:
            await self._work(ctx, jobs)
            return
        # Several meters polled at once (Modbus TCP, max_inflight > 1): one worker per request in
        # flight, each taking the earliest due job of a meter no other worker is polling.
        async with asyncio.TaskGroup() as tasks:
            for _ in range(workers):
                tasks.create_task(self._work(ctx, jobs))

    async def _work(self, ctx: SourceContext, jobs: _Jobs) -> None:
        clock = ctx.clock
        while True:
            due, meter, group = await jobs.take()
            try:
                now = clock.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                    now = clock.monotonic()
                if meter.breaker_allows(now):
                    opened = self._opened
                    try:
                        records = await meter.poll(self.bus, group, clock.time_ms, now)
                        # pymodbus awaits each answer with asyncio.wait_for, which on Python 3.11 drops
                        # a cancel that coincides with the answer; without this check a stopping gateway
                        # polled on at full speed (the check lives here, not in Bus: a relay switched
                        # off from a cancelled door task must still complete its write and read-back).
                        raise_if_cancelled()
                    except BusDown as exc:
                        jobs.give_back(due, meter, group)  # retry this job first
                        await self._reopen(ctx, str(exc), opened)
                        continue
                    ctx.emit_many(records)
                ctx.progress()
                due, skipped = next_deadline(due, group.interval_s, clock.monotonic())
                self.missed_polls += skipped
                jobs.give_back(due, meter, group)
            except BaseException:
                jobs.release(meter)
                raise

    async def _reopen(self, ctx: SourceContext, reason: str, opened: int) -> None:
        """The bus went down under a poll: take every meter offline and reopen, once for all workers
        (a worker whose request failed before another's reopen finished just uses the new connection)."""
        async with self._reopen_lock:
            if self._opened != opened:
                return
            self._bus_down(ctx, reason)
            await self._open(ctx)

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
            self._opened += 1
            if self._down_reported:
                log.info("%s: bus available again (%s)", self.config.id, self.endpoint)
                ctx.emit(
                    Event(
                        self.config.id, "bus_available", ctx.clock.time_ms(), {"endpoint": str(self.endpoint)}
                    )
                )
                self._down_reported = False
            return
