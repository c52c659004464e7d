"""The rules processor: threshold, door-left-open and deadband rules over the record stream.

One dict lookup per record finds the rules of its source; records of other sources pass at the
cost of that lookup. Timers (`for_s`, `after_s`) fire from `tick()` even when no further reading
comes. A rule's running state (since when its condition holds, since when a door is open) is saved
at each transition, so a restart neither forgets a door left open nor restarts its clock; the
alarms themselves live in the shared `AlarmBook`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.core import Event, Klass, Reading, Record
from gateway.lanes.alarms import AlarmBook
from gateway.lanes.rules.config import DeadbandRule, DoorLeftOpenRule, Rule, ThresholdRule
from gateway.storage.state import StateStore

NS = "rule"


def _key(rule_id: str, source_id: str) -> str:
    return f"rule:{rule_id}:{source_id}"


@dataclass(slots=True)
class _Threshold:
    rule: ThresholdRule
    since_ms: int | None = None  # condition holds since (not yet an alarm)
    last_value: float | None = None

    def breached(self, v: float) -> bool:
        r = self.rule
        return v > r.above if r.above is not None else v < r.below  # type: ignore[operator]

    def cleared(self, v: float) -> bool:
        r = self.rule
        if r.above is not None:
            return v < (r.clear_at if r.clear_at is not None else r.above)
        assert r.below is not None
        return v > (r.clear_at if r.clear_at is not None else r.below)


@dataclass(slots=True)
class _Door:
    rule: DoorLeftOpenRule
    source_id: str
    open_since_ms: int | None = None


@dataclass(slots=True)
class _Deadband:
    rule: DeadbandRule
    last_value: float | None = None
    last_ms: int = 0


class RulesProcessor:
    name = "rules"

    def __init__(self, rules: Sequence[Rule], book: AlarmBook, store: StateStore | None) -> None:
        self.book = book
        self.store = store
        self.thresholds: dict[tuple[str, str], list[_Threshold]] = {}
        self.doors: dict[str, list[_Door]] = {}
        self.deadbands: dict[tuple[str, str], _Deadband] = {}
        self.sources: set[str] = set()
        saved = store.load(NS) if store else {}
        for rule in rules:
            if not rule.enabled:
                continue
            if isinstance(rule, ThresholdRule):
                t = _Threshold(rule)
                t.since_ms = saved.get(_key(rule.id, rule.source), {}).get("since_ms")
                self.thresholds.setdefault((rule.source, rule.point), []).append(t)
                self.sources.add(rule.source)
            elif isinstance(rule, DoorLeftOpenRule):
                for source in rule.sources:
                    d = _Door(rule, source, saved.get(_key(rule.id, source), {}).get("open_since_ms"))
                    self.doors.setdefault(source, []).append(d)
                    self.sources.add(source)
            else:
                for point in rule.points:
                    self.deadbands[(rule.source, point)] = _Deadband(rule)
                    self.sources.add(rule.source)
        self.suppressed = 0

    # -- Processor ------------------------------------------------------------------------------
    def process(self, record: Record) -> Iterable[Record]:
        if record.source_id not in self.sources:
            return (record,)
        out: list[Record] = []
        if isinstance(record, Reading):
            key = (record.source_id, record.point)
            for t in self.thresholds.get(key, ()):
                out.extend(self._threshold(t, record))
            if record.point == "door_open":
                for d in self.doors.get(record.source_id, ()):
                    out.extend(self._door(d, bool(record.value), record.ts_ms))
            band = self.deadbands.get(key)
            if band is not None and record.klass == Klass.TELEMETRY and not self._passes(band, record):
                self.suppressed += 1
                return out
        elif record.kind in ("door_opened", "door_closed"):
            for d in self.doors.get(record.source_id, ()):
                out.extend(self._door(d, record.kind == "door_opened", record.ts_ms))
        out.insert(0, record)
        return out

    def tick(self, now_ms: int) -> Iterable[Record]:
        out: list[Record] = []
        for group in self.thresholds.values():
            for t in group:
                if t.since_ms is not None and t.last_value is not None:
                    out.extend(self._maybe_open_threshold(t, now_ms))
        for doors in self.doors.values():
            for d in doors:
                out.extend(self._maybe_open_door(d, now_ms))
        return out

    # -- threshold ------------------------------------------------------------------------------
    def _threshold(self, t: _Threshold, r: Reading) -> list[Event]:
        if isinstance(r.value, bool) or not isinstance(r.value, int | float) or r.quality == "bad":
            return []
        v = float(r.value)
        t.last_value = v
        key = _key(t.rule.id, t.rule.source)
        if self.book.is_open(key):
            if t.cleared(v):
                self._save_threshold(t, None)
                return self.book.close(key, r.ts_ms, {"rule": t.rule.id, "value": v})
            return []
        if not t.breached(v):
            if t.since_ms is not None:
                self._save_threshold(t, None)
            return []
        if t.since_ms is None:
            self._save_threshold(t, r.ts_ms)
        return self._maybe_open_threshold(t, r.ts_ms)

    def _maybe_open_threshold(self, t: _Threshold, now_ms: int) -> list[Event]:
        rule = t.rule
        key = _key(rule.id, rule.source)
        if t.since_ms is None or self.book.is_open(key) or now_ms - t.since_ms < rule.for_s * 1000:
            return []
        attrs: dict[str, Any] = {
            "rule": rule.id,
            "point": rule.point,
            "value": t.last_value,
            "limit": rule.above if rule.above is not None else rule.below,
            "direction": "above" if rule.above is not None else "below",
            "since_ms": t.since_ms,
        }
        return self.book.open(key, rule.kind, rule.source, now_ms, attrs, renotify_s=rule.renotify_min * 60)

    def _save_threshold(self, t: _Threshold, since_ms: int | None) -> None:
        t.since_ms = since_ms
        if self.store is not None:
            self.store.save(NS, {_key(t.rule.id, t.rule.source): {"since_ms": since_ms}})

    # -- door left open -------------------------------------------------------------------------
    def _door(self, d: _Door, is_open: bool, ts_ms: int) -> list[Event]:
        key = _key(d.rule.id, d.source_id)
        if is_open:
            if d.open_since_ms is None:
                self._save_door(d, ts_ms)
            return self._maybe_open_door(d, ts_ms)
        if d.open_since_ms is None:
            return []
        open_s = round((ts_ms - d.open_since_ms) / 1000)
        self._save_door(d, None)
        return self.book.close(key, ts_ms, {"rule": d.rule.id, "open_s": open_s})

    def _maybe_open_door(self, d: _Door, now_ms: int) -> list[Event]:
        key = _key(d.rule.id, d.source_id)
        if d.open_since_ms is None or self.book.is_open(key):
            return []
        open_s = (now_ms - d.open_since_ms) / 1000
        if open_s < d.rule.after_s:
            return []
        attrs = {
            "rule": d.rule.id,
            "open_since_ms": d.open_since_ms,
            "open_s": round(open_s),
            "limit_s": d.rule.after_s,
        }
        return self.book.open(
            key, "door_left_open", d.source_id, now_ms, attrs, renotify_s=d.rule.renotify_min * 60
        )

    def _save_door(self, d: _Door, since_ms: int | None) -> None:
        d.open_since_ms = since_ms
        if self.store is not None:
            self.store.save(NS, {_key(d.rule.id, d.source_id): {"open_since_ms": since_ms}})

    # -- deadband -------------------------------------------------------------------------------
    @staticmethod
    def _passes(band: _Deadband, r: Reading) -> bool:
        rule = band.rule
        if isinstance(r.value, bool) or not isinstance(r.value, int | float):
            return True
        v = float(r.value)
        elapsed_ms = r.ts_ms - band.last_ms
        if band.last_value is None or elapsed_ms >= rule.max_interval_s * 1000:
            band.last_value, band.last_ms = v, r.ts_ms
            return True
        if elapsed_ms < rule.min_interval_s * 1000:
            return False
        moved = abs(v - band.last_value)
        needed = max(rule.deadband, abs(band.last_value) * rule.deadband_pct / 100)
        if moved > 0 and moved >= needed:
            band.last_value, band.last_ms = v, r.ts_ms
            return True
        return False
