"""What one sensor's adverts mean: door events, dedup, replay guard, key problems and presence.

A `SensorTracker` sees the sensor's decoded adverts in arrival order and turns them into records:

- the door state (`opening`, `door`, `window`, `garage_door`) is a STATE reading `door_open` (latest
  wins) on first sight and on every change; `door_opened` / `door_closed` events on changes only,
  since the state before the gateway started is unknown;
- `door_left_open` (when the device reports it) and `sensor_tampered` are warning events, once per
  episode (a tamper episode ends when the device says so or on any closed report, as xiaomi-ble does);
  what the device reports happening (`button_pressed`, `dimmer_rotated`, `device_command`,
  `sensor_reset`) are events;
- other booleans (motion, light...) are STATE readings on change; numbers (battery, temperature,
  RSSI) are TELEMETRY, at most once per `telemetry_interval_s`;
- a sensor with a bindkey (`keyed`) has only authenticated adverts applied: a plaintext one is a
  downgrade (forged, or encryption switched off on the device), counted and reported once per
  episode as `sensor_downgrade`, never applied;
- a repeated transmission (same packet id or encryption counter, same content) is dropped; an
  authenticated advert whose counter is not above the highest accepted is a replay and is dropped
  (`replay.py`, which also decides when a counter restart is real: then `sensor_counter_reset`);
- a wrong or missing bindkey, or a malformed advert, is reported once per episode (log line and
  event), never as a stream; the episode ends when an advert decodes again;
- presence: silence longer than `offline_after_s` → `device_offline`; heard again → `device_online`.
  Any advert counts as a sign of life, even one we cannot decrypt.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from drivers.ble.adverts import Advert, Decoded, Undecodable
from drivers.ble.replay import ReplayGuard, Verdict
from gateway.core.records import Event, Klass, Reading, Record, Severity, Value

log = logging.getLogger("lintel.ble")

DOOR_POINTS = ("opening", "door", "window", "garage_door")
_DEVICE_EVENT_SEVERITY: dict[str, Severity] = {"sensor_reset": "warning"}  # someone opened it?

_PROBLEM_TEXT = {
    "wrong_key": "cannot decrypt: wrong bindkey?",
    "no_key": "advert is encrypted but no bindkey is configured (set bindkey_file)",
    "malformed": "malformed advert",
    "unsupported": "advert format not supported",
}


@dataclass
class SensorTracker:
    sensor_id: str
    address: str
    offline_after_s: float
    telemetry_interval_s: float
    started: float  # monotonic time the tracker was created: silence is counted from here
    keyed: bool = False  # a bindkey is configured: only authenticated adverts are applied
    guard: ReplayGuard = field(default_factory=ReplayGuard)
    counts: Counter[str] = field(default_factory=Counter)
    last_heard: float | None = None
    online: bool | None = None
    door_open: bool | None = None
    left_open: bool = False
    tampered: bool = False
    last_rssi: int | None = None
    _states: dict[str, Value] = field(default_factory=dict)
    _last_packet: tuple[int | None, int | None, tuple[tuple[str, Value], ...]] | None = None
    _problem: str | None = None
    _downgraded: bool = False
    _telemetry_at: float | None = None

    def on_advert(self, advert: Advert, result: Decoded | Undecodable, ts_ms: int) -> list[Record]:
        """Records for one advert of this sensor; `ts_ms` is the wall-clock time of reception."""
        now = advert.ts
        records: list[Record] = []
        self.counts["adverts"] += 1
        self.last_rssi = advert.rssi
        self._heard(now, ts_ms, records)
        if isinstance(result, Undecodable):
            self._report_problem(result, ts_ms, records)
            return records
        if self.keyed and not result.authenticated:
            self._report_downgrade(result, ts_ms, records)
            return records
        packet = self._packet_key(result)
        if packet is not None and packet == self._last_packet:
            self.counts["duplicates"] += 1
            return records
        if result.counter is not None and not self._counter_ok(result.counter, now, ts_ms, records):
            return records
        if packet is not None:
            self._last_packet = packet  # only an accepted transmission makes later copies repeats
        if self._downgraded:
            log.info("%s: authenticated adverts again", self.sensor_id)
            self._downgraded = False
        if self._problem is not None:
            log.info("%s: adverts decode again (%s)", self.sensor_id, result.format)
            self._problem = None
        if result.note:
            self.counts["partial"] += 1
        if result.unknown_objects:
            if not self.counts["unknown_object"]:
                log.warning(
                    "%s: %s event code the format does not define: not an event (counted as "
                    "unknown_object, logged once)",
                    self.sensor_id,
                    result.format,
                )
            self.counts["unknown_object"] += result.unknown_objects
        self.counts["decoded"] += 1
        self._apply(result, now, ts_ms, records)
        return records

    def check_presence(self, now: float, ts_ms: int) -> list[Record]:
        """`device_offline` once the sensor has been silent for `offline_after_s`."""
        since = self._silent_since()
        if self.online is not False and now - since >= self.offline_after_s:
            self.online = False
            log.warning("%s: offline, nothing heard for %.0f s", self.sensor_id, now - since)
            attrs: dict[str, object] = {
                "reason": "silent",
                "silent_s": round(now - since),
                "address": self.address,
                "never_heard": self.last_heard is None,
            }
            return [Event(self.sensor_id, "device_offline", ts_ms, attrs, "warning")]
        return []

    # -- helpers ----------------------------------------------------------------------------------

    def _silent_since(self) -> float:
        return self.last_heard if self.last_heard is not None else self.started

    def _heard(self, now: float, ts_ms: int, records: list[Record]) -> None:
        if self.online is False:
            silent = now - self._silent_since()
            log.info("%s: heard again after %.0f s", self.sensor_id, silent)
            attrs = {"address": self.address, "silent_s": round(silent), "rssi_dbm": self.last_rssi}
            records.append(Event(self.sensor_id, "device_online", ts_ms, attrs))
        self.online = True
        self.last_heard = now

    def _report_problem(self, result: Undecodable, ts_ms: int, records: list[Record]) -> None:
        self.counts[result.reason] += 1
        if self._problem == result.reason:
            return
        self._problem = result.reason
        text = _PROBLEM_TEXT[result.reason]
        if result.reason in ("malformed", "unsupported"):
            text = f"{text}: {result.detail}"
        log.error("%s: %s", self.sensor_id, text)
        kind = (
            "sensor_decrypt_failed" if result.reason in ("wrong_key", "no_key") else "sensor_advert_invalid"
        )
        attrs = {
            "reason": result.reason,
            "detail": result.detail,
            "format": result.format,
            "address": self.address,
        }
        records.append(Event(self.sensor_id, kind, ts_ms, attrs, "warning"))

    def _report_downgrade(self, result: Decoded, ts_ms: int, records: list[Record]) -> None:
        if not result.values and not result.events:
            self.counts["plaintext_empty"] += 1  # carries nothing to apply (a MiBeacon beacon frame)
            return
        self.counts["downgrades"] += 1
        if self._downgraded:
            return
        self._downgraded = True
        log.warning(
            "%s: plaintext %s advert from a sensor with a bindkey: not applied (forged, or encryption "
            "switched off on the device?)",
            self.sensor_id,
            result.format,
        )
        attrs = {"format": result.format, "address": self.address, "encrypted": result.encrypted}
        records.append(Event(self.sensor_id, "sensor_downgrade", ts_ms, attrs, "warning"))

    @staticmethod
    def _packet_key(result: Decoded) -> tuple[int | None, int | None, tuple[tuple[str, Value], ...]] | None:
        """What makes two adverts one transmission sent again (None: the format cannot tell)."""
        if result.packet_id is None and result.counter is None:
            return None
        return (result.packet_id, result.counter, tuple(sorted(result.values.items())))

    def _counter_ok(self, counter: int, now: float, ts_ms: int, records: list[Record]) -> bool:
        guard = self.guard
        high, probation = guard.high, guard.on_probation
        verdict = guard.check(counter, now)
        if verdict is Verdict.FRESH:
            return True
        if verdict is Verdict.OLD:
            self.counts["replays"] += 1
            if self.counts["replays"] == 1:
                log.warning("%s: dropped an encrypted advert with an old counter (replay?)", self.sensor_id)
            if guard.on_probation and not probation:
                log.warning(
                    "%s: counter went back (%s → %d): a replay, or the device restarted; accepted only "
                    "after %.0f s of fresh adverts while the old sequence stays silent",
                    self.sensor_id,
                    high,
                    counter,
                    guard.policy.probation_s,
                )
            return False
        log.warning("%s: encryption counter restarted (%s → %d); accepting", self.sensor_id, high, counter)
        attrs = {
            "previous": guard.previous,
            "counter": counter,
            "address": self.address,
            "probation_s": guard.policy.probation_s,
        }
        records.append(Event(self.sensor_id, "sensor_counter_reset", ts_ms, attrs, "warning"))
        return True

    def _apply(self, result: Decoded, now: float, ts_ms: int, records: list[Record]) -> None:
        values = result.values
        door = next((values[p] for p in DOOR_POINTS if p in values), None)
        if door is False:
            # Any closed report ends a tamper episode, a change or not (as xiaomi-ble clears it):
            # closed → tamper → "closed" → tamper is two episodes, two warnings.
            self.tampered = False
        if isinstance(door, bool) and door != self.door_open:
            known = self.door_open is not None
            self.door_open = door
            records.append(Reading(self.sensor_id, "door_open", door, ts_ms, klass=Klass.STATE))
            if known:
                kind = "door_opened" if door else "door_closed"
                records.append(Event(self.sensor_id, kind, ts_ms, {"rssi_dbm": self.last_rssi}))
            if not door:
                self.left_open = False
        left_open = values.get("door_left_open")
        if left_open is True and not self.left_open:
            self.left_open = True
            records.append(
                Event(self.sensor_id, "door_left_open", ts_ms, {"reported_by": "device"}, "warning")
            )
        elif left_open is False:
            self.left_open = False
        tamper = values.get("tamper")
        if isinstance(tamper, bool) and tamper != self.tampered:
            self.tampered = tamper
            if tamper:
                records.append(Event(self.sensor_id, "sensor_tampered", ts_ms, {}, "warning"))
        for event in result.events:
            severity = _DEVICE_EVENT_SEVERITY.get(event.kind, "info")
            records.append(Event(self.sensor_id, event.kind, ts_ms, dict(event.attrs), severity))
        for name, value in values.items():
            if name in DOOR_POINTS or name in ("door_left_open", "tamper"):
                continue
            if isinstance(value, bool | str) and self._states.get(name) != value:
                self._states[name] = value
                records.append(Reading(self.sensor_id, name, value, ts_ms, klass=Klass.STATE))
        if self._telemetry_at is None or now - self._telemetry_at >= self.telemetry_interval_s:
            self._telemetry_at = now
            for name, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    records.append(Reading(self.sensor_id, name, value, ts_ms))
            if self.last_rssi is not None:
                records.append(Reading(self.sensor_id, "rssi_dbm", self.last_rssi, ts_ms))
