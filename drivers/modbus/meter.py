"""One meter on a bus: its poll groups, its health, its counters.

A meter's points are grouped by poll interval; each group is planned into merged reads once. A poll
of a group runs its reads in order and stops at the first failure (a meter that did not answer the
first read will not answer the second, and the others on the bus are waiting).

Health is a small state machine. `offline_after` failed polls in a row make the meter offline (one
`device_offline` event, one log line); from then on a circuit breaker spaces out probes
exponentially (interval, 2x, 4x ... up to `breaker_max_s`), each probe a single attempt without
retries, so a dead meter costs the others at most one timeout per probe. The first good answer
makes it online again (`device_online`).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass

from drivers.modbus.bus import Bus, RequestFailed
from drivers.modbus.config import MeterConfig, ModbusBusConfig
from drivers.modbus.counters import CounterGuard
from drivers.modbus.plan import ReadRequest, plan_reads
from drivers.modbus.profiles import MeterPoint
from gateway.core import Event, Reading, Record

log = logging.getLogger("lintel.modbus")


@dataclass
class PollGroup:
    interval_s: float
    requests: list[ReadRequest]


def _one_per_point(request: ReadRequest) -> list[ReadRequest]:
    return [ReadRequest(p.function, p.address, p.size, (p,)) for p in request.points]


class MeterPoller:
    def __init__(self, meter: MeterConfig, bus: ModbusBusConfig) -> None:
        self.id = meter.id
        self.unit = meter.unit
        self.timeout_s = (meter.timeout_ms or bus.timeout_ms) / 1000
        self.retries = bus.retries if meter.retries is None else meter.retries
        self.max_gap = bus.max_gap if meter.max_gap is None else meter.max_gap
        self.offline_after = bus.offline_after
        self.breaker_max_s = bus.breaker_max_s
        interval = meter.interval_s or bus.interval_s
        by_interval: dict[float, list[MeterPoint]] = {}
        for point in meter.resolved_points():
            by_interval.setdefault(point.interval_s or interval, []).append(point)
        self.groups = [
            PollGroup(iv, plan_reads([p.spec for p in pts], self.max_gap))
            for iv, pts in sorted(by_interval.items())
        ]
        self.guards = {
            p.name: CounterGuard(p.max_rate_per_h) for pts in by_interval.values() for p in pts if p.counter
        }
        self.online: bool | None = None  # None until the first poll
        self.failures_in_row = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.breaker_s = 0.0  # current probe spacing while offline
        self.next_probe_mono = 0.0
        self.last_error = ""

    # -- planning -------------------------------------------------------------------------------

    def request_count(self) -> int:
        return sum(len(g.requests) for g in self.groups)

    def _split(self, group: PollGroup, request: ReadRequest) -> list[ReadRequest]:
        """A merged read hit a hole the meter refuses: read those points one by one from now on.

        Returns the single-point requests that replace it in the group."""
        single = _one_per_point(request)
        at = group.requests.index(request)
        group.requests[at : at + 1] = single
        log.warning(
            "%s: unit %d refuses the merged read at %d+%d (illegal data address); reading its %d points "
            "separately from now on (set max_gap = 0 for this meter to skip the first attempt)",
            self.id,
            self.unit,
            request.address,
            request.count,
            len(request.points),
        )
        return single

    # -- polling --------------------------------------------------------------------------------

    def breaker_allows(self, now_mono: float) -> bool:
        return self.online is not False or now_mono >= self.next_probe_mono

    async def poll(
        self, bus: Bus, group: PollGroup, now_ms: Callable[[], int], now_mono: float
    ) -> list[Record]:
        """Read one group; returns readings and any health/counter events. Raises BusDown only."""
        probing = self.online is False
        retries = 0 if probing or self.failures_in_row else self.retries
        values: dict[str, object] = {}
        requests = list(group.requests)
        index = 0
        while index < len(requests):
            request = requests[index]
            try:
                data = await bus.read_block(
                    self.unit,
                    request.function,
                    request.address,
                    request.count,
                    timeout_s=self.timeout_s,
                    retries=retries,
                )
            except RequestFailed as exc:
                if exc.reason == "exception" and exc.code == 2 and len(request.points) > 1:
                    requests[index : index + 1] = self._split(group, request)
                    continue
                self.errors[exc.reason] += 1
                return self._failed(exc, now_ms, now_mono)
            values.update(request.decode(data))
            index += 1
        return self._succeeded(values, now_ms())

    def _failed(self, exc: RequestFailed, now_ms: Callable[[], int], now_mono: float) -> list[Record]:
        self.failures_in_row += 1
        self.last_error = str(exc)
        records: list[Record] = []
        if self.online is False:
            self.breaker_s = min(self.breaker_s * 2, self.breaker_max_s)
            self.next_probe_mono = now_mono + self.breaker_s
        elif self.failures_in_row >= self.offline_after:
            self.online = False
            self.breaker_s = min(max(g.interval_s for g in self.groups), self.breaker_max_s)
            self.next_probe_mono = now_mono + self.breaker_s
            log.warning("%s: offline (unit %d): %s", self.id, self.unit, exc)
            records.append(self._offline_event(exc.reason, str(exc), now_ms()))
        return records

    def _offline_event(self, reason: str, error: str, ts_ms: int) -> Event:
        attrs = {"reason": reason, "error": error, "unit": self.unit, "failures": dict(self.errors)}
        return Event(self.id, "device_offline", ts_ms, attrs, "warning")

    def _succeeded(self, values: dict[str, object], ts_ms: int) -> list[Record]:
        records: list[Record] = []
        if self.online is not True:
            if self.online is False:
                log.info("%s: online again (unit %d)", self.id, self.unit)
                records.append(
                    Event(self.id, "device_online", ts_ms, {"unit": self.unit, "failures": dict(self.errors)})
                )
            self.online = True
        self.failures_in_row = 0
        self.breaker_s = 0.0
        for name, value in values.items():
            if value is None:  # the meter says "not available" (NaN): publish nothing rather than a number
                continue
            guard = self.guards.get(name)
            if guard is not None and isinstance(value, int | float) and not isinstance(value, bool):
                verdict = guard.check(float(value), ts_ms)
                if verdict.event:
                    log.warning("%s: %s on %s: %s", self.id, verdict.event, name, verdict.attrs)
                    records.append(
                        Event(
                            self.id, verdict.event, ts_ms, {"point": name, **(verdict.attrs or {})}, "warning"
                        )
                    )
                if not verdict.publish:
                    continue
                records.append(Reading(self.id, name, value, ts_ms, counter=True))
                continue
            assert isinstance(value, int | float | bool | str)
            records.append(Reading(self.id, name, value, ts_ms))
        return records

    def mark_bus_down(self, reason: str, ts_ms: int) -> list[Record]:
        """The whole bus is gone: every meter that was online goes offline with that reason."""
        self.errors["disconnected"] += 1
        self.last_error = reason
        if self.online is False:
            return []
        self.online = False
        self.failures_in_row = max(self.failures_in_row, 1)
        self.breaker_s = 0.0
        self.next_probe_mono = 0.0  # probe as soon as the bus is back
        return [self._offline_event("disconnected", reason, ts_ms)]
