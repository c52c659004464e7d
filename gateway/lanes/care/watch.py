"""The care watch processor: households' activity signals in, care alarms out, on the gateway.

It runs in the pipeline beside every record, so it works while the uplink is down: the alarms go
to the outbox (alarm class, synced at once) and leave when the broker is back. Per record it costs
one dict lookup unless the record comes from a watched device. Timers are evaluated by `tick()`
once a second (day/night decided once per tick for all households), the pattern heuristic once per
local hour. Alarms open and close through the shared `AlarmBook` (ids, acks, reminders, resolved
events); household timers are saved every `state_save_interval_s` and at shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from gateway.core import Event, Record
from gateway.core.clock import clock_is_set
from gateway.core.records import Severity
from gateway.lanes.alarms import AlarmBook
from gateway.lanes.care.config import CareLimits, CareSection, HouseholdConfig, minutes_of_day
from gateway.lanes.care.daytime import DayClock
from gateway.lanes.care.household import (
    CONTINUOUS_WATER,
    DOOR,
    DOOR_INACTIVE,
    ELECTRICITY,
    NO_ACTIVITY,
    PATTERN_BREAK,
    WATER,
    HouseholdWatch,
    Limits,
    SignalState,
    Transition,
)
from gateway.lanes.care.pattern import DayPattern
from gateway.storage.state import StateStore

log = logging.getLogger("lintel.care")

NS = "care"
DAY_NS = "care_day"
KINDS = (NO_ACTIVITY, DOOR_INACTIVE, CONTINUOUS_WATER, PATTERN_BREAK)


def alarm_key(household_id: str, kind: str) -> str:
    return f"care:{household_id}:{kind}"


def _limits(section: CareSection, h: HouseholdConfig) -> Limits:
    """Every limit is `[care]`'s, except those a household may override (`CareLimits`) and does."""
    values: dict[str, Any] = {}
    for f in fields(Limits):
        own = f.name in CareLimits.model_fields
        values[f.name] = section.limit(h, f.name) if own else getattr(section, f.name)
    return Limits(**values)


class CareWatch:
    name = "care"

    def __init__(
        self,
        section: CareSection,
        book: AlarmBook,
        store: StateStore | None,
        now_ms: int,
        timezone: str | None = None,
    ) -> None:
        """`timezone`: the building's IANA zone for day and night (None: the system's)."""
        self.section = section
        self.book = book
        self.store = store
        self.clock = DayClock(
            timezone, minutes_of_day(section.day_starts), minutes_of_day(section.night_starts)
        )
        self.renotify_s = section.renotify_min * 60
        self.households: dict[str, HouseholdWatch] = {}
        self.by_device: dict[str, list[tuple[HouseholdWatch, str]]] = {}
        saved = store.load(NS) if store else {}
        days = store.load(DAY_NS) if store else {}
        for h in section.households:
            if not h.enabled:
                continue
            signals = {}
            for signal, device in (
                (DOOR, h.door),
                (WATER, h.water_meter),
                (ELECTRICITY, h.electricity_meter),
            ):
                if device is not None:
                    signals[signal] = SignalState(device)
            watch = HouseholdWatch(
                h.id, _limits(section, h), signals, now_ms, h.water_point, h.energy_point, h.power_point
            )
            if h.id in saved:
                watch.restore(saved[h.id])
            prefix = f"{h.id}:"
            watch.pattern = DayPattern(
                {int(k[len(prefix) :]): list(v) for k, v in days.items() if k.startswith(prefix)}
            )
            # The alarm book is the truth about what is open (it is saved at every change).
            watch.open_kinds = {k for k in KINDS if book.is_open(alarm_key(h.id, k))}
            self.households[h.id] = watch
            for signal, state in signals.items():
                self.by_device.setdefault(state.device, []).append((watch, signal))
        self._orphans_checked = False
        self._last_day: int | None = None
        self._last_hour: int | None = None
        self._last_save_ms = now_ms

    def _close_orphans(self, now_ms: int) -> list[Event]:
        """Care alarms of households no longer watched (config changed) close, saying why."""
        out: list[Event] = []
        for alarm in list(self.book.open_by_key.values()):
            if alarm.key.startswith("care:") and alarm.source_id not in self.households:
                out.extend(
                    self.book.close(
                        alarm.key, now_ms, {"household": alarm.source_id, "reason": "no longer watched"}
                    )
                )
        return out

    # -- Processor ------------------------------------------------------------------------------
    def process(self, record: Record) -> Iterable[Record]:
        entries = self.by_device.get(record.source_id)
        if entries is None:
            return (record,)
        out: list[Record] = [record]
        for watch, signal in entries:
            transitions = watch.observe(signal, record, self.clock)
            if transitions:
                out.extend(self._events(watch, transitions))
        return out

    def tick(self, now_ms: int) -> Iterable[Record]:
        out: list[Record] = []
        if not self._orphans_checked:
            self._orphans_checked = True
            out.extend(self._close_orphans(now_ms))
        if not clock_is_set(now_ms):
            return out  # day, night and durations mean nothing before the clock is set
        clock = self.clock
        local = clock.local(now_ms)
        day = local.date().toordinal()
        is_day = clock.is_day(now_ms)
        if day != self._last_day:
            keep = self.section.pattern_days + 1
            for watch in self.households.values():
                out.extend(self._events(watch, watch.day_rolled(now_ms, clock)))
                dropped = watch.pattern.prune(day, keep)
                if dropped and self.store is not None:
                    self.store.save(DAY_NS, {}, [f"{watch.household_id}:{d}" for d in dropped])
            self._last_day = day
        hourly = local.hour != self._last_hour
        self._last_hour = local.hour
        for watch in self.households.values():
            transitions = watch.evaluate(now_ms, is_day, clock)
            if hourly:
                transitions.extend(watch.evaluate_pattern(now_ms, clock))
            if transitions:
                out.extend(self._events(watch, transitions))
        if now_ms - self._last_save_ms >= self.section.state_save_interval_s * 1000:
            self.save(now_ms)
        return out

    def close(self, now_ms: int) -> None:
        """Save every household's timers (at shutdown)."""
        self.save(now_ms)

    # -- helpers --------------------------------------------------------------------------------
    def _events(self, watch: HouseholdWatch, transitions: list[Transition]) -> list[Event]:
        hid = watch.household_id
        out: list[Event] = []
        for t in transitions:
            attrs = {"household": hid, **t.attrs}
            if t.action == "open":
                out.extend(
                    self.book.open(
                        alarm_key(hid, t.kind),
                        t.kind,
                        hid,
                        t.ts_ms,
                        attrs,
                        resolved_kind="care_resolved",
                        renotify_s=self.renotify_s,
                    )
                )
                log.warning("%s: %s", hid, t.kind)
            elif t.action == "close":
                out.extend(self.book.close(alarm_key(hid, t.kind), t.ts_ms, attrs))
                log.info("%s: %s resolved", hid, t.kind)
            else:
                severity: Severity = "warning" if t.kind == "care_data_missing" else "info"
                out.append(Event(hid, t.kind, t.ts_ms, attrs, severity))
                log.info("%s: %s (%s)", hid, t.kind, t.attrs.get("signal"))
        return out

    def save(self, now_ms: int) -> None:
        self._last_save_ms = now_ms
        if self.store is None:
            return
        rows: dict[str, Any] = {}
        day_rows: dict[str, Any] = {}
        today = self.clock.day_index(now_ms)
        for hid, watch in self.households.items():
            if not watch.dirty:
                continue
            rows[hid] = watch.to_state()
            for d in (today - 1, today):
                counts = watch.pattern.days.get(d)
                if counts is not None:
                    day_rows[f"{hid}:{d}"] = counts
            watch.dirty = False
        self.store.save(NS, rows)
        self.store.save(DAY_NS, day_rows)
