"""The alarm lifecycle: open once, acknowledge, re-notify while open, close with a resolved event.

Processors (care watch, alarm rules) decide *when* a condition starts and ends; the book turns
that into the records upstream sees and keeps the open alarms durable:

- `open(key, ...)` -> the alarm event (alarm class) carrying `alarm_id` and `notify: 1`. Opening a
  key that is already open does nothing: an alarm opens once per episode.
- while open and not acknowledged, the same event again every `renotify_s` (`notify: 2, 3, …`,
  same `alarm_id`), so an alarm nobody acted on is not forgotten upstream;
- `ack(alarm_id, by, via)` -> `alarm_acked` (event class); re-notification stops, the alarm stays
  open until its condition ends;
- `close(key, ...)` -> the resolved event (`care_resolved`, `alarm_resolved`, …) with the
  duration, and the alarm leaves the book.

Alarm ids are short decimal numbers from a persisted counter (a technician types them in
`lintel alarms ack 17`); with the gateway id they are unique upstream. Every change is saved to the
state store at once: alarms change rarely, and a restart must neither forget nor re-raise one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from gateway.core import Event, Record
from gateway.storage.state import StateStore

NS = "alarm"
META_NS = "alarm_meta"


@dataclass(frozen=True, slots=True)
class AlarmReport:
    alarm_id: str
    kind: str
    source_id: str
    opened_ms: int
    open_s: int
    notified: int
    acked: bool
    acked_by: str | None


@dataclass(frozen=True, slots=True)
class OpenAlarmsReport:
    """How many alarms are open now (for dashboards that read only `stats`): no ids, no sources."""

    count: int
    unacknowledged: int
    by_kind: dict[str, int]

    @classmethod
    def of(cls, alarms: tuple[AlarmReport, ...]) -> OpenAlarmsReport:
        by_kind: dict[str, int] = {}
        for alarm in alarms:
            by_kind[alarm.kind] = by_kind.get(alarm.kind, 0) + 1
        return cls(len(alarms), sum(not a.acked for a in alarms), dict(sorted(by_kind.items())))


@dataclass(slots=True)
class OpenAlarm:
    alarm_id: str
    key: str
    kind: str
    source_id: str
    opened_ms: int
    attrs: dict[str, Any]
    resolved_kind: str
    renotify_s: float
    notified: int = 1
    last_notify_ms: int = 0
    acked_ms: int | None = None
    acked_by: str | None = None

    def report(self, now_ms: int) -> AlarmReport:
        return AlarmReport(
            self.alarm_id,
            self.kind,
            self.source_id,
            self.opened_ms,
            round((now_ms - self.opened_ms) / 1000),
            self.notified,
            self.acked_ms is not None,
            self.acked_by,
        )


class AckOutcome:
    OK = "ok"
    ALREADY = "already_acked"
    UNKNOWN = "unknown_alarm"


class AlarmBook:
    def __init__(self, store: StateStore | None) -> None:
        self.store = store
        self.open_by_key: dict[str, OpenAlarm] = {}
        self.by_id: dict[str, OpenAlarm] = {}
        self.next_id = 1
        if store is not None:
            for raw in store.load(NS).values():
                alarm = OpenAlarm(**raw)
                self.open_by_key[alarm.key] = alarm
                self.by_id[alarm.alarm_id] = alarm
            self.next_id = int(store.load(META_NS).get("next_id", 1))

    def is_open(self, key: str) -> bool:
        return key in self.open_by_key

    def open(
        self,
        key: str,
        kind: str,
        source_id: str,
        ts_ms: int,
        attrs: Mapping[str, Any],
        *,
        resolved_kind: str = "alarm_resolved",
        renotify_s: float = 0,
    ) -> list[Event]:
        """Open the alarm `key` (no-op if open); returns the alarm event to emit."""
        if key in self.open_by_key:
            return []
        alarm_id = str(self.next_id)
        self.next_id += 1
        alarm = OpenAlarm(
            alarm_id, key, kind, source_id, ts_ms, dict(attrs), resolved_kind, renotify_s, 1, ts_ms
        )
        self.open_by_key[key] = alarm
        self.by_id[alarm_id] = alarm
        self._save(alarm)
        if self.store is not None:
            self.store.save(META_NS, {"next_id": self.next_id})
        return [self._event(alarm, ts_ms)]

    def close(self, key: str, ts_ms: int, attrs: Mapping[str, Any] | None = None) -> list[Event]:
        """Close `key` if open; returns the resolved event."""
        alarm = self.open_by_key.pop(key, None)
        if alarm is None:
            return []
        del self.by_id[alarm.alarm_id]
        if self.store is not None:
            self.store.save(NS, {}, [alarm.alarm_id])
        body: dict[str, Any] = {
            "alarm_id": alarm.alarm_id,
            "alarm_kind": alarm.kind,
            "opened_ms": alarm.opened_ms,
            "duration_s": round((ts_ms - alarm.opened_ms) / 1000),
            "acked": alarm.acked_ms is not None,
        }
        body.update(attrs or {})
        return [Event(alarm.source_id, alarm.resolved_kind, ts_ms, body)]

    def ack(self, alarm_id: str, ts_ms: int, by: str, via: str) -> tuple[str, list[Event]]:
        """Acknowledge an open alarm. Returns (outcome, events)."""
        alarm = self.by_id.get(alarm_id)
        if alarm is None:
            return AckOutcome.UNKNOWN, []
        if alarm.acked_ms is not None:
            return AckOutcome.ALREADY, []
        alarm.acked_ms = ts_ms
        alarm.acked_by = by
        self._save(alarm)
        event = Event(
            alarm.source_id,
            "alarm_acked",
            ts_ms,
            {"alarm_id": alarm_id, "alarm_kind": alarm.kind, "by": by, "via": via},
        )
        return AckOutcome.OK, [event]

    def tick(self, now_ms: int) -> list[Event]:
        """Re-notify open, unacknowledged alarms whose interval has passed."""
        out: list[Event] = []
        for alarm in self.open_by_key.values():
            if alarm.acked_ms is not None or alarm.renotify_s <= 0:
                continue
            if now_ms - alarm.last_notify_ms >= alarm.renotify_s * 1000:
                alarm.notified += 1
                alarm.last_notify_ms = now_ms
                self._save(alarm)
                out.append(self._event(alarm, now_ms))
        return out

    def listing(self, now_ms: int) -> list[AlarmReport]:
        """Every open alarm, oldest id first."""
        return [a.report(now_ms) for a in sorted(self.by_id.values(), key=lambda a: int(a.alarm_id))]

    def _event(self, alarm: OpenAlarm, ts_ms: int) -> Event:
        attrs = dict(alarm.attrs)
        attrs["alarm_id"] = alarm.alarm_id
        attrs["notify"] = alarm.notified
        if alarm.notified > 1:
            attrs["open_s"] = round((ts_ms - alarm.opened_ms) / 1000)
        return Event(alarm.source_id, alarm.kind, ts_ms, attrs, "alarm")

    def _save(self, alarm: OpenAlarm) -> None:
        if self.store is None:
            return
        self.store.save(NS, {alarm.alarm_id: asdict(alarm)})


class AlarmReminders:
    """The pipeline step that re-notifies open alarms (placed after every alarm-raising step)."""

    name = "alarm-reminders"

    def __init__(self, book: AlarmBook) -> None:
        self.book = book

    def process(self, record: Record) -> Iterable[Record]:
        return (record,)

    def tick(self, now_ms: int) -> Iterable[Record]:
        return self.book.tick(now_ms)
