"""A simulated device that produces plausible meter and door-sensor records.

It is deterministic for a given seed and never touches hardware; `fail_after_polls` makes it raise
`SourceUnavailable` like a meter that drops off the bus, so supervision can be seen working.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

from drivers.simulated.config import SimulatedSourceConfig
from gateway.core import Klass, PollingSource, Reading, Record, SourceContext, SourceUnavailable
from gateway.core.devices import DeviceKind, DeviceReport, PointMemory


class SimulatedSource(PollingSource):
    def __init__(self, config: SimulatedSourceConfig) -> None:
        super().__init__(config.interval_s)
        self.config = config
        self._rng = random.Random(config.seed)
        self._polls = 0
        self._energy_kwh = 1000.0 + self._rng.random() * 500
        self._volume_m3 = 100.0 + self._rng.random() * 50
        self._door_open = False
        self._load_names = [f"p{i:05d}_value" for i in range(config.points)]
        self.memory = PointMemory()
        self._online: bool | None = None
        self._failed_ms: int | None = None
        self._seen_ms: int | None = None

    def device_reports(self) -> list[DeviceReport]:
        """The simulated device's health: offline from its simulated timeout until it is replaced."""
        sid = self.config.id
        kind: DeviceKind = "sensor" if self.config.profile == "door_sensor" else "meter"
        counters = {"polls": self._polls, "missed_polls": self.missed_polls}
        points = () if self.config.profile == "load" else self.memory.points(sid)
        offline_since = self._failed_ms if self._online is False else None
        errors = 1 if self._online is False else 0  # its simulated timeout (the instance is then replaced)
        return [
            DeviceReport(sid, sid, kind, self._online, self._seen_ms, offline_since, counters, errors, points)
        ]

    async def run(self, ctx: SourceContext) -> None:
        await super().run(self.memory.tap(ctx))

    async def poll(self, ctx: SourceContext) -> Iterable[Record]:
        self._polls += 1
        if self.config.fail_after_polls and self._polls % (self.config.fail_after_polls + 1) == 0:
            self._online, self._failed_ms = False, ctx.clock.time_ms()
            raise SourceUnavailable(f"{self.config.id}: no response (simulated timeout)")
        self._online, self._seen_ms = True, ctx.clock.time_ms()
        profile = self.config.profile
        if profile == "electricity_meter":
            return self._electricity(ctx)
        if profile == "water_meter":
            return self._water(ctx)
        if profile == "door_sensor":
            return self._door(ctx)
        return self._load(ctx)

    def _electricity(self, ctx: SourceContext) -> list[Record]:
        hour_angle = (ctx.clock.time_ms() / 3_600_000) % 24 / 24 * 2 * math.pi
        power_w = max(20.0, 400 + 300 * math.sin(hour_angle) + self._rng.gauss(0, 40))
        self._energy_kwh += power_w * self.interval_s / 3_600_000
        return [
            ctx.reading("energy_import_kwh", round(self._energy_kwh, 4)),
            ctx.reading("power_w", round(power_w, 1)),
            ctx.reading("voltage_v", round(230 + self._rng.gauss(0, 1.5), 1)),
        ]

    def _water(self, ctx: SourceContext) -> list[Record]:
        flowing = self._rng.random() < 0.2
        flow_m3h = round(self._rng.uniform(0.3, 0.9), 3) if flowing else 0.0
        self._volume_m3 += flow_m3h * self.interval_s / 3600
        return [ctx.reading("volume_m3", round(self._volume_m3, 5)), ctx.reading("flow_m3h", flow_m3h)]

    def _door(self, ctx: SourceContext) -> list[Record]:
        records: list[Record] = []
        if self._rng.random() < 0.3:
            self._door_open = not self._door_open
            kind = "door_opened" if self._door_open else "door_closed"
            records.append(ctx.event(kind))
            records.append(ctx.reading("door_open", self._door_open, klass=Klass.STATE))
        if self._polls % 60 == 1:
            records.append(ctx.reading("battery_pct", max(0, 100 - self._polls // 600)))
        if self._rng.random() < self.config.alarm_probability:
            records.append(ctx.event("door_forced", "alarm", door_open=self._door_open))
        return records

    def _load(self, ctx: SourceContext) -> list[Record]:
        ts = ctx.clock.time_ms()
        sid = self.config.id
        base = self._polls
        return [Reading(sid, name, base + i * 0.5, ts) for i, name in enumerate(self._load_names)]
