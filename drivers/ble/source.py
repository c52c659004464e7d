"""The `ble` source: one adapter, the configured sensors, a watchdog over the scanner.

The radio's callback only enqueues (`put_nowait`; a full queue drops and counts): decoding, the
trackers and `ctx.emit` run in the source's own task, so a burst of adverts never stalls the D-Bus
connection. Adverts from addresses that are not configured only feed the watchdog's sign of life.

Adverts of residents' tags the face lane watches (`listen_for_tags`: the runtime hands over the
`TagHub`) are queued too and judged by `tags.TagReceiver` instead of a tracker; a configured sensor's
address stays a sensor.

Replay counters of keyed sensors live in `ctx.store` (the daemon's state.db): `counters.py`.
Counters moved by an advert that changed something are saved once the queue is drained (a burst
costs one write per sensor, not one per advert); the others on the tick, rate-limited; all at stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from drivers.ble.adverts import Advert, mac_bytes
from drivers.ble.config import BleConfig
from drivers.ble.counters import ReplayCounters
from drivers.ble.decode import decode_advert
from drivers.ble.scanner import AdvertScanner, BleakAdvertScanner, ScannerError
from drivers.ble.simulator import SimulatedRadio, SimulatedSensor
from drivers.ble.tags import TagReceiver
from drivers.ble.tracker import SensorTracker
from drivers.ble.watchdog import ScannerWatchdog, Step
from gateway.core import (
    Clock,
    Event,
    KeyValueStore,
    Klass,
    MemoryStore,
    Record,
    SourceContext,
    SourceUnavailable,
)
from gateway.core.devices import DeviceReport, PointMemory
from gateway.core.tags import TagHub

log = logging.getLogger("lintel.ble")

TICK_S = 1.0


class _Sensor:
    __slots__ = ("key", "mac", "tracker")

    def __init__(self, tracker: SensorTracker, mac: bytes, key: bytes | None) -> None:
        self.tracker = tracker
        self.mac = mac
        self.key = key


class BleSource:
    def __init__(self, config: BleConfig, scanner: AdvertScanner | None = None) -> None:
        self.config = config
        self.scanner = scanner or self._default_scanner(config)
        self.watchdog = ScannerWatchdog(config.watchdog_silence_s, config.max_adapter_resets)
        self.counts: Counter[str] = Counter()
        self.sensors: dict[str, _Sensor] = {}
        self._queue: asyncio.Queue[Advert] | None = None
        self._drop_logged_at = 0.0
        self.counters = ReplayCounters(MemoryStore(), config.id)
        self.memory = PointMemory()  # latest values and offline episodes, per sensor
        self._clock: Clock | None = None
        self._tag_hub: TagHub | None = None
        self.tags: TagReceiver | None = None  # while the runtime lends a TagHub and the source runs

    def listen_for_tags(self, hub: TagHub) -> None:
        """Judge adverts of the tags `hub` watches (gateway.core.tags.TagListener)."""
        self._tag_hub = hub

    def device_reports(self) -> list[DeviceReport]:
        """Each sensor's health: its tracker's counts (adverts, duplicates, replays, downgrades,
        wrong_key...) plus `decrypt_failed` (wrong or missing key) and `refused` (replays and
        downgrades, never applied); when it was last heard; its latest values. Adverts the adapter's
        queue dropped are not attributed to a sensor: they are the source's `counts["dropped"]`."""
        reports = []
        for sensor in self.sensors.values():
            t = sensor.tracker
            counts = {"adverts": 0, **t.counts}
            counts["decrypt_failed"] = t.counts["wrong_key"] + t.counts["no_key"]
            counts["refused"] = t.counts["replays"] + t.counts["downgrades"]
            last_seen = None
            if t.last_heard is not None and self._clock is not None:
                ago_s = self._clock.monotonic() - t.last_heard
                last_seen = self._clock.time_ms() - round(ago_s * 1000)
            reports.append(
                DeviceReport(
                    t.sensor_id,
                    self.config.id,
                    "sensor",
                    t.online,
                    last_seen,
                    self.memory.offline_since_ms.get(t.sensor_id) if t.online is False else None,
                    counts,
                    counts["decrypt_failed"] + counts["refused"] + t.counts["malformed"],
                    self.memory.points(t.sensor_id),
                )
            )
        return reports

    @staticmethod
    def _default_scanner(config: BleConfig) -> AdvertScanner:
        if config.backend == "simulated":
            # Counters start from the clock, as if the sensors kept counting while the demo was
            # stopped: its replay guard (counters kept in state.db) must not see a restart.
            start = int(time.time())
            return SimulatedRadio(
                [
                    SimulatedSensor(s.address, s.model or "SBDW-002C", s.key(), name=s.id, counter=start)
                    for s in config.sensors
                    if s.enabled
                ]
            )
        return BleakAdvertScanner(config.adapter, config.scanning)

    def _load_sensors(self, now: float, store: KeyValueStore | None = None) -> None:
        """Build the trackers; keyed sensors get their replay counter back from `store`."""
        self.counters = ReplayCounters(store if store is not None else MemoryStore(), self.config.id)
        policy = self.config.restart_policy()
        self.sensors.clear()
        for sensor in self.config.sensors:
            if not sensor.enabled:
                continue
            try:
                key = sensor.key()
            except (OSError, ValueError) as exc:
                raise SourceUnavailable(
                    f"{sensor.id}: cannot read bindkey_file {sensor.bindkey_file}: {exc}"
                ) from exc
            tracker = SensorTracker(
                sensor.id,
                sensor.address,
                sensor.offline_after_s or self.config.offline_after_s,
                self.config.telemetry_interval_s,
                started=now,
                keyed=key is not None,
            )
            if key is not None:
                tracker.guard = self.counters.guard(sensor.address, key, policy)
            self.sensors[sensor.address] = _Sensor(tracker, mac_bytes(sensor.address), key)

    # -- the radio side: never blocks -------------------------------------------------------------

    def on_advert(self, advert: Advert) -> None:
        """Scanner callback (event loop). Enqueue configured sensors' adverts; count the rest."""
        self.counts["adverts"] += 1  # from anyone: the watchdog's sign of life
        wanted = advert.address in self.sensors or (
            self.tags is not None and self.tags.watching(advert.address)
        )
        if not wanted or self._queue is None:
            self.counts["ignored"] += 1
            return
        try:
            self._queue.put_nowait(advert)
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            if advert.ts - self._drop_logged_at > 60:
                self._drop_logged_at = advert.ts
                log.warning(
                    "%s: advert queue full, dropped %d so far", self.config.id, self.counts["dropped"]
                )

    # -- the decoding side ------------------------------------------------------------------------

    def handle(self, advert: Advert, ts_ms: int) -> list[Record]:
        """Records for one advert of a configured sensor (decode + tracker). Pure of I/O."""
        sensor = self.sensors.get(advert.address)
        if sensor is None:
            return []
        result = decode_advert(advert, sensor.mac, sensor.key)
        if result is None:
            self.counts["unknown_format"] += 1
            return []
        return sensor.tracker.on_advert(advert, result, ts_ms)

    async def run(self, ctx: SourceContext) -> None:
        ctx, self._clock = self.memory.tap(ctx), ctx.clock
        self._load_sensors(ctx.clock.monotonic(), ctx.store)
        if self._tag_hub is not None:
            self.tags = TagReceiver(self._tag_hub, self.config.id, ctx.store, self.config.restart_policy())
        self._queue = asyncio.Queue(self.config.queue_size)
        consumer = asyncio.create_task(self._consume(ctx, self._queue))
        try:
            await self._scan_forever(ctx)
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            await self.scanner.stop()
            self._queue = None
            self.counters.flush(ctx.clock.monotonic(), force=True)
            if self.tags is not None:
                self.tags.flush(ctx.clock.monotonic())

    def process(self, ctx: SourceContext, advert: Advert) -> None:
        """Decode, track and emit one queued advert; note its counter for saving. A watched tag's
        advert goes to the tag receiver (it emits nothing: the face lane decides)."""
        if advert.address not in self.sensors and self.tags is not None:
            self.tags.handle(advert)
            return
        records = self.handle(advert, ctx.clock.time_ms())
        for record in records:
            ctx.emit(record)
        # An advert that changed something is worth replaying: its counter is saved soon.
        self.counters.touched(advert.address, urgent=any(r.klass is not Klass.TELEMETRY for r in records))

    async def _consume(self, ctx: SourceContext, queue: asyncio.Queue[Advert]) -> None:
        while True:
            advert = await queue.get()
            self.process(ctx, advert)
            if queue.empty():
                self.counters.flush(advert.ts)

    async def _scan_forever(self, ctx: SourceContext) -> None:
        watchdog = self.watchdog
        while True:
            # Adverts counted before this start are old news; any counted from here on (even during
            # the start itself) are a sign of life.
            seen = self.counts["adverts"]
            try:
                await self.scanner.start(self.on_advert)
            except ScannerError as exc:
                await self._do(ctx, watchdog.start_failed(str(exc)))
                continue
            log.info("%s: scanning on %s (%s)", self.config.id, self.config.adapter, self.scanner.mode)
            watchdog.started(ctx.clock.monotonic())
            while True:
                await asyncio.sleep(TICK_S)
                now = ctx.clock.monotonic()
                if self.counts["adverts"] != seen:
                    seen = self.counts["adverts"]
                    if watchdog.advert(now):
                        log.info("%s: adapter %s works again", self.config.id, self.config.adapter)
                        ctx.emit(ctx.event("ble_adapter_recovered", adapter=self.config.adapter))
                self._check_presence(ctx, now)
                self.counters.flush(now)
                ctx.progress()
                step = watchdog.check(now)
                if step is not None:
                    await self.scanner.stop()
                    await self._do(ctx, step)
                    break

    async def _do(self, ctx: SourceContext, step: Step) -> None:
        """Carry out a watchdog step; keeps reporting progress and presence while it waits."""
        log.warning("%s: scanner %s: %s", self.config.id, step.kind, step.reason)
        if step.alarm:
            ctx.emit(
                Event(
                    self.config.id,
                    "ble_adapter_failed",
                    ctx.clock.time_ms(),
                    {"adapter": self.config.adapter, "error": step.reason, "resets": self.watchdog.resets},
                    "alarm",
                )
            )
        if step.kind == "reset":
            try:
                await self.scanner.reset_adapter()
            except ScannerError as exc:
                log.warning("%s: adapter reset failed: %s", self.config.id, exc)
        deadline = ctx.clock.monotonic() + step.delay_s
        while True:
            ctx.progress()
            self._check_presence(ctx, ctx.clock.monotonic())
            left = deadline - ctx.clock.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(TICK_S, left))

    def _check_presence(self, ctx: SourceContext, now: float) -> None:
        ts_ms = ctx.clock.time_ms()
        for sensor in self.sensors.values():
            for record in sensor.tracker.check_presence(now, ts_ms):
                ctx.emit(record)
