"""One household under care watch: its activity signals, their data health, and its rules.

Signals: the front door (opened/closed), water (the volume counter rising) and electricity (power
above the standby baseline, read directly or averaged from the energy counter over 10 minutes).
Each signal keeps when it last showed activity and when its device last reported at all: silence
of the *resident* and silence of a *sensor* are told apart.
A signal whose device is offline (or a meter that sent nothing for `data_stale_h`) is *missing*:
it is reported once as `care_data_missing`, and no rule that depends on it alone raises an alarm.

The watch is pure: `observe()` takes the records of the household's devices and `evaluate()` the
time; both return what happened as `Transition`s for the processor to turn into events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.core import Event, Reading, Record
from gateway.lanes.care.daytime import DayClock
from gateway.lanes.care.pattern import DayPattern, PatternVerdict

DOOR, WATER, ELECTRICITY = "door", "water", "electricity"
NO_ACTIVITY = "care_no_activity"
DOOR_INACTIVE = "care_door_inactive"
CONTINUOUS_WATER = "care_continuous_water"
PATTERN_BREAK = "care_pattern_break"

H_MS = 3_600_000
ENERGY_WINDOW_MS = 600_000


@dataclass(frozen=True, slots=True)
class Limits:
    no_activity_day_h: float
    no_activity_night_h: float
    door_inactive_day_h: float
    continuous_water_min: float
    standby_w: float
    pattern_break: bool
    water_pause_s: float
    data_stale_h: float
    pattern_min_days: int
    pattern_days: int
    pattern_ratio: float
    pattern_min_active_min: float


@dataclass(frozen=True, slots=True)
class Transition:
    """`open`/`close` of an alarm kind, or a one-off `event` (missing/restored data)."""

    action: str  # "open" | "close" | "event"
    kind: str
    ts_ms: int
    attrs: dict[str, Any]


@dataclass(slots=True)
class SignalState:
    device: str
    last_activity_ms: int | None = None
    last_seen_ms: int | None = None
    offline: bool = False
    missing_reported: bool = False


@dataclass(slots=True)
class WaterFlow:
    value: float | None = None
    value_ms: int | None = None
    rising_since_ms: int | None = None
    last_rise_ms: int | None = None


@dataclass(slots=True)
class EnergyAnchor:
    kwh: float | None = None
    ts_ms: int | None = None


@dataclass(slots=True)
class HouseholdWatch:
    household_id: str
    limits: Limits
    signals: dict[str, SignalState]
    since_ms: int
    water_point: str = "volume_m3"
    energy_point: str = "energy_import_kwh"
    power_point: str | None = "power_w"
    water: WaterFlow = field(default_factory=WaterFlow)
    energy: EnergyAnchor = field(default_factory=EnergyAnchor)
    pattern: DayPattern = field(default_factory=DayPattern)
    open_kinds: set[str] = field(default_factory=set)
    door_is_open: bool | None = None
    dirty: bool = True

    # -- records ------------------------------------------------------------------------------
    def observe(self, signal: str, record: Record, clock: DayClock) -> list[Transition]:
        """A record from the device behind `signal`; returns transitions it caused."""
        state = self.signals[signal]
        ts = record.ts_ms
        out: list[Transition] = []
        if isinstance(record, Event):
            if record.kind == "device_offline":
                state.offline = True
                self.dirty = True
                return out
            if record.kind == "device_online":
                out.extend(self._back_online(signal, ts))
                state.last_seen_ms = ts
                return out
            if signal == DOOR and record.kind in ("door_opened", "door_closed"):
                out.extend(self._back_online(signal, ts))
                state.last_seen_ms = ts
                self.door_is_open = record.kind == "door_opened"
                out.extend(self._activity(DOOR, ts, clock, record.kind))
            return out
        out.extend(self._back_online(signal, ts))
        state.last_seen_ms = ts
        if signal == DOOR and record.point == "door_open" and isinstance(record.value, bool):
            if self.door_is_open is not None and record.value != self.door_is_open:
                out.extend(self._activity(DOOR, ts, clock, "door_opened" if record.value else "door_closed"))
            self.door_is_open = record.value
        elif signal == WATER and record.point == self.water_point:
            out.extend(self._water(record, clock))
        elif signal == ELECTRICITY and record.point == self.energy_point:
            out.extend(self._energy(record, clock))
        elif signal == ELECTRICITY and record.point == self.power_point:
            out.extend(self._power(record, clock))
        return out

    def _back_online(self, signal: str, ts: int) -> list[Transition]:
        state = self.signals[signal]
        state.offline = False
        if not state.missing_reported:
            return []
        state.missing_reported = False
        self.dirty = True
        return [Transition("event", "care_data_restored", ts, {"signal": signal, "device": state.device})]

    def _water(self, r: Reading, clock: DayClock) -> list[Transition]:
        flow = self.water
        value = float(r.value)
        out: list[Transition] = []
        if flow.value is not None and flow.value_ms is not None and value > flow.value:
            # The volume rose since the previous reading: water ran at least since then, unless the
            # readings are so far apart that the run may have been short.
            pause_ms = self.limits.water_pause_s * 1000
            run_over = flow.last_rise_ms is not None and flow.value_ms - flow.last_rise_ms >= pause_ms
            if flow.rising_since_ms is None or run_over:
                gap = r.ts_ms - flow.value_ms
                flow.rising_since_ms = flow.value_ms if gap <= pause_ms else r.ts_ms
            flow.last_rise_ms = r.ts_ms
            out.extend(self._activity(WATER, r.ts_ms, clock, "water_used"))
        flow.value, flow.value_ms = value, r.ts_ms
        return out

    def _power(self, r: Reading, clock: DayClock) -> list[Transition]:
        if isinstance(r.value, bool) or float(r.value) <= self.limits.standby_w:
            return []
        return self._activity(ELECTRICITY, r.ts_ms, clock, "electricity_used")

    def _energy(self, r: Reading, clock: DayClock) -> list[Transition]:
        """Average power over windows of at least ENERGY_WINDOW_MS: a meter counting in 0.01 kWh
        steps shows a single step between two close readings as kilowatts."""
        anchor = self.energy
        kwh = float(r.value)
        if anchor.kwh is None or anchor.ts_ms is None or kwh < anchor.kwh:
            anchor.kwh, anchor.ts_ms = kwh, r.ts_ms  # first reading, or a replaced meter
            return []
        span_ms = r.ts_ms - anchor.ts_ms
        if span_ms < ENERGY_WINDOW_MS:
            return []
        avg_w = (kwh - anchor.kwh) * 3_600_000_000 / span_ms
        anchor.kwh, anchor.ts_ms = kwh, r.ts_ms
        if avg_w > self.limits.standby_w:
            return self._activity(ELECTRICITY, r.ts_ms, clock, "electricity_used")
        return []

    def _activity(self, signal: str, ts: int, clock: DayClock, what: str) -> list[Transition]:
        state = self.signals[signal]
        if state.last_activity_ms is None or ts > state.last_activity_ms:
            state.last_activity_ms = ts
        self.dirty = True
        local = clock.local(ts)
        self.pattern.mark(local.date().toordinal(), local.hour, ts // 60_000)
        out: list[Transition] = []
        evidence = {"activity": what, "signal": signal}
        if NO_ACTIVITY in self.open_kinds:
            out.append(self._close(NO_ACTIVITY, ts, evidence))
        if signal == DOOR and DOOR_INACTIVE in self.open_kinds:
            out.append(self._close(DOOR_INACTIVE, ts, evidence))
        if PATTERN_BREAK in self.open_kinds and self._pattern_recovered(ts, clock):
            out.append(self._close(PATTERN_BREAK, ts, evidence))
        return out

    # -- time ---------------------------------------------------------------------------------
    def evaluate(self, now_ms: int, is_day: bool, clock: DayClock) -> list[Transition]:
        out = self._data_health(now_ms)
        out.extend(self._no_activity(now_ms, clock))
        out.extend(self._door_inactive(now_ms, is_day, clock))
        out.extend(self._continuous_water(now_ms))
        return out

    def missing(self, now_ms: int) -> list[str]:
        stale_ms = self.limits.data_stale_h * H_MS
        names = []
        for name, s in self.signals.items():
            if s.offline:
                names.append(name)
            elif name != DOOR and now_ms - (s.last_seen_ms or self.since_ms) > stale_ms:
                # Meters report every few seconds; a door sensor only on change and on a slow
                # heartbeat, so its driver's device_offline is the only trustworthy sign.
                names.append(name)
        return names

    def _data_health(self, now_ms: int) -> list[Transition]:
        out = []
        for name in self.missing(now_ms):
            s = self.signals[name]
            if not s.missing_reported:
                s.missing_reported = True
                self.dirty = True
                attrs = {
                    "signal": name,
                    "device": s.device,
                    "reason": "device offline" if s.offline else "no data",
                    "last_seen_ms": s.last_seen_ms,
                    "note": f"the {name} of {self.household_id} cannot be watched until its device reports",
                }
                out.append(Transition("event", "care_data_missing", now_ms, attrs))
        return out

    def last_activity_ms(self) -> int | None:
        times = [s.last_activity_ms for s in self.signals.values() if s.last_activity_ms is not None]
        return max(times) if times else None

    def evidence(self, now_ms: int) -> dict[str, Any]:
        return {
            "last_activity_ms": self.last_activity_ms(),
            "signals": {
                name: {"last_activity_ms": s.last_activity_ms, "last_seen_ms": s.last_seen_ms}
                for name, s in self.signals.items()
            },
            "missing_signals": self.missing(now_ms),
            "watching_since_ms": self.since_ms,
        }

    def _no_activity(self, now_ms: int, clock: DayClock) -> list[Transition]:
        if NO_ACTIVITY in self.open_kinds:
            return []
        last = self.last_activity_ms() or self.since_ms
        silence_ms = now_ms - last
        day_h, night_h = self.limits.no_activity_day_h, self.limits.no_activity_night_h
        if silence_ms < min(day_h, night_h) * H_MS:
            return []
        # A silence that spans part of a night is judged by the night limit (the resident slept);
        # one that lies entirely within a day by the day limit.
        spans_night = clock.daytime_s(last, now_ms) * 1000 < silence_ms - 60_000
        limit_h = night_h if spans_night else day_h
        if silence_ms < limit_h * H_MS:
            return []
        missing = self.missing(now_ms)
        if len(missing) == len(self.signals):
            return []  # nothing is reporting: that is care_data_missing, not the resident's silence
        attrs = {
            "silence_h": round(silence_ms / H_MS, 2),
            "limit_h": limit_h,
            "limit_kind": "night" if spans_night else "day",
            **self.evidence(now_ms),
        }
        return [self._open(NO_ACTIVITY, now_ms, attrs)]

    def _door_inactive(self, now_ms: int, is_day: bool, clock: DayClock) -> list[Transition]:
        door = self.signals.get(DOOR)
        if door is None or DOOR_INACTIVE in self.open_kinds or not is_day or door.offline:
            return []
        since = door.last_activity_ms or self.since_ms
        daytime_h = clock.daytime_s(since, now_ms) / 3600
        if daytime_h < self.limits.door_inactive_day_h:
            return []
        attrs = {
            "daytime_h_without_door": round(daytime_h, 2),
            "limit_h": self.limits.door_inactive_day_h,
            **self.evidence(now_ms),
        }
        return [self._open(DOOR_INACTIVE, now_ms, attrs)]

    def _continuous_water(self, now_ms: int) -> list[Transition]:
        flow = self.water
        if flow.rising_since_ms is None or flow.last_rise_ms is None:
            return []
        water = self.signals[WATER]
        pause_ms = self.limits.water_pause_s * 1000
        seen = water.last_seen_ms or 0
        # The run ended once the meter has reported without the volume rising for a pause. A
        # meter that stopped reporting says nothing about the tap: the run stays open.
        if now_ms - flow.last_rise_ms >= pause_ms and seen > flow.last_rise_ms:
            run_min = (flow.last_rise_ms - flow.rising_since_ms) / 60_000
            flow.rising_since_ms = None
            self.dirty = True
            if CONTINUOUS_WATER in self.open_kinds:
                return [self._close(CONTINUOUS_WATER, now_ms, {"run_min": round(run_min, 1)})]
            return []
        run_min = (now_ms - flow.rising_since_ms) / 60_000
        if CONTINUOUS_WATER in self.open_kinds or run_min < self.limits.continuous_water_min:
            return []
        attrs = {
            "running_since_ms": flow.rising_since_ms,
            "run_min": round(run_min, 1),
            "limit_min": self.limits.continuous_water_min,
            "volume_m3": flow.value,
        }
        return [self._open(CONTINUOUS_WATER, now_ms, attrs)]

    def evaluate_pattern(self, now_ms: int, clock: DayClock) -> list[Transition]:
        """Once per local hour: today's activity against the learned pattern (heuristic)."""
        if not self.limits.pattern_break or PATTERN_BREAK in self.open_kinds:
            return []
        verdict = self._pattern_verdict(now_ms, clock)
        if verdict is None or not verdict.below:
            return []
        if verdict.expected_active_min < self.limits.pattern_min_active_min:
            return []
        if len(self.missing(now_ms)) == len(self.signals):
            return []
        attrs = {
            "heuristic": True,
            "expected_active_min": verdict.expected_active_min,
            "actual_active_min": verdict.actual_active_min,
            "days_learned": verdict.days_learned,
            "ratio": self.limits.pattern_ratio,
            **self.evidence(now_ms),
        }
        return [self._open(PATTERN_BREAK, now_ms, attrs)]

    def _pattern_verdict(self, now_ms: int, clock: DayClock) -> PatternVerdict | None:
        today = clock.day_index(now_ms)
        learned = {
            d
            for d in self.pattern.days
            if today - self.limits.pattern_days <= d < today and clock.day_start_ms(d) >= self.since_ms
        }
        if len(learned) < self.limits.pattern_min_days:
            return None
        first_hour = clock.day_start_min // 60
        until_hour = clock.local(now_ms).hour
        if until_hour <= first_hour:
            return None  # before the day window has begun: nothing to compare yet
        return self.pattern.verdict(today, first_hour, until_hour, learned, self.limits.pattern_ratio)

    def _pattern_recovered(self, ts: int, clock: DayClock) -> bool:
        verdict = self._pattern_verdict(ts, clock)
        return verdict is None or not verdict.below

    def day_rolled(self, now_ms: int, clock: DayClock) -> list[Transition]:
        """A new local day: today's pattern alarm ends, the new day is watched from now on."""
        self.pattern.ensure_day(clock.day_index(now_ms))
        if PATTERN_BREAK in self.open_kinds:
            return [self._close(PATTERN_BREAK, now_ms, {"reason": "new day"})]
        return []

    # -- helpers ------------------------------------------------------------------------------
    def _open(self, kind: str, ts: int, attrs: dict[str, Any]) -> Transition:
        self.open_kinds.add(kind)
        self.dirty = True
        return Transition("open", kind, ts, attrs)

    def _close(self, kind: str, ts: int, attrs: dict[str, Any]) -> Transition:
        self.open_kinds.discard(kind)
        self.dirty = True
        return Transition("close", kind, ts, attrs)

    # -- persistence --------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "since_ms": self.since_ms,
            "signals": {
                n: [s.last_activity_ms, s.last_seen_ms, s.offline, s.missing_reported]
                for n, s in self.signals.items()
            },
            "water": [
                self.water.value,
                self.water.value_ms,
                self.water.rising_since_ms,
                self.water.last_rise_ms,
            ],
            "energy": [self.energy.kwh, self.energy.ts_ms],
            "door_is_open": self.door_is_open,
        }

    def restore(self, raw: dict[str, Any]) -> None:
        self.since_ms = int(raw.get("since_ms", self.since_ms))
        for name, values in raw.get("signals", {}).items():
            s = self.signals.get(name)
            if s is not None:
                s.last_activity_ms, s.last_seen_ms, s.offline, s.missing_reported = values
        w = raw.get("water")
        if w:
            self.water = WaterFlow(*w)
        e = raw.get("energy")
        if e:
            self.energy = EnergyAnchor(*e)
        self.door_is_open = raw.get("door_is_open")
        self.dirty = False
