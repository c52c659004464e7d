"""Alarm rules and the alarm lifecycle: the real processors over a real state database."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.core import ConfigError, Event, Klass, Reading, Record
from gateway.lanes.alarms import AlarmBook, AlarmReminders
from gateway.lanes.rules.engine import RulesProcessor
from gateway.storage.state import StateStore, state_path

T0 = 1_790_000_000_000

SOURCES = """
[gateway]
id = "gw"
site = "s"

[[sources]]
id = "boiler-1"
type = "simulated"
profile = "electricity_meter"

[[sources]]
id = "door-1"
type = "simulated"
profile = "door_sensor"
"""

RULES = """
[[rules]]
id = "boiler-hot"
type = "threshold"
source = "boiler-1"
point = "temperature_c"
above = 80
clear_at = 75
for_s = 60
renotify_min = 10

[[rules]]
id = "door-open"
type = "door_left_open"
sources = ["door-1"]
after_s = 300

[[rules]]
id = "thin-power"
type = "deadband"
source = "boiler-1"
points = ["power_w"]
deadband = 10
min_interval_s = 5
max_interval_s = 60
"""


class Rig:
    def __init__(self, tmp_path: Path, rules: str = RULES) -> None:
        self.tmp_path = tmp_path
        self.config = parse_config((SOURCES + rules).encode()).config
        self.out: list[Record] = []
        self.open()

    def open(self) -> None:
        self.store = StateStore(state_path(self.tmp_path))
        self.book = AlarmBook(self.store)
        self.rules = RulesProcessor(self.config.rules, self.book, self.store)
        self.reminders = AlarmReminders(self.book)

    def restart(self) -> None:
        self.store.close()
        self.open()

    def feed(self, record: Record) -> list[Record]:
        got = list(self.rules.process(record))
        self.out.extend(got)
        return got

    def tick(self, now_ms: int) -> None:
        self.out.extend(self.rules.tick(now_ms))
        self.out.extend(self.reminders.tick(now_ms))

    def events(self, kind: str) -> list[Event]:
        return [r for r in self.out if isinstance(r, Event) and r.kind == kind]


def temp(value: float, t_s: float) -> Reading:
    return Reading("boiler-1", "temperature_c", value, T0 + int(t_s * 1000))


def test_threshold_needs_the_minimum_duration_and_has_hysteresis(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.feed(temp(85, 0))
    rig.feed(temp(79, 30))  # back under the limit before 60 s: no alarm, the clock restarts
    rig.feed(temp(85, 40))
    rig.tick(T0 + 90_000)  # 50 s above
    assert rig.events("threshold_exceeded") == []
    rig.tick(T0 + 100_000)  # 60 s above, no new reading needed: the timer fires from tick
    alarms = rig.events("threshold_exceeded")
    assert len(alarms) == 1 and alarms[0].klass == Klass.ALARM
    assert alarms[0].attrs["rule"] == "boiler-hot" and alarms[0].attrs["value"] == 85
    # Hovering between clear_at and the limit does not clear it, nor raise it again.
    for i, v in enumerate([79, 81, 76, 82, 77]):
        rig.feed(temp(v, 110 + i * 10))
    rig.tick(T0 + 170_000)
    assert len(rig.events("threshold_exceeded")) == 1 and rig.events("alarm_resolved") == []
    rig.feed(temp(74, 180))
    resolved = rig.events("alarm_resolved")
    assert len(resolved) == 1
    assert resolved[0].attrs["alarm_id"] == alarms[0].attrs["alarm_id"]
    assert resolved[0].attrs["alarm_kind"] == "threshold_exceeded"


def test_reminders_while_open_stop_when_acknowledged(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.feed(temp(90, 0))
    rig.tick(T0 + 60_000)
    alarm_id = rig.events("threshold_exceeded")[0].attrs["alarm_id"]
    for minute in range(2, 32):
        rig.tick(T0 + minute * 60_000)
    notes = [e.attrs["notify"] for e in rig.events("threshold_exceeded")]
    assert notes == [1, 2, 3, 4]  # at 0, 10, 20 and 30 minutes after opening
    assert {e.attrs["alarm_id"] for e in rig.events("threshold_exceeded")} == {alarm_id}
    outcome, acked = rig.book.ack(alarm_id, T0 + 32 * 60_000, "operator-7", "mqtt")
    assert outcome == "ok" and acked[0].kind == "alarm_acked" and acked[0].attrs["by"] == "operator-7"
    assert rig.book.ack(alarm_id, T0 + 33 * 60_000, "operator-7", "mqtt")[0] == "already_acked"
    assert rig.book.ack("999", T0, "x", "mqtt")[0] == "unknown_alarm"
    for minute in range(33, 80):
        rig.tick(T0 + minute * 60_000)
    assert len(rig.events("threshold_exceeded")) == 4
    assert rig.book.listing(T0)[0].acked is True


def test_door_left_open_fires_from_tick_and_survives_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.feed(Event("door-1", "door_opened", T0))
    rig.tick(T0 + 200_000)
    rig.restart()  # the gateway restarts while the door is open: the clock keeps running
    rig.tick(T0 + 299_000)
    assert rig.events("door_left_open") == []
    rig.tick(T0 + 300_000)
    alarms = rig.events("door_left_open")
    assert len(alarms) == 1 and alarms[0].severity == "alarm" and alarms[0].attrs["open_s"] == 300
    rig.restart()  # an open alarm survives a restart: not raised again, closed once
    rig.tick(T0 + 400_000)
    assert len(rig.events("door_left_open")) == 1
    rig.feed(Reading("door-1", "door_open", False, T0 + 420_000, klass=Klass.STATE))
    resolved = rig.events("alarm_resolved")
    assert len(resolved) == 1 and resolved[0].attrs["open_s"] == 420
    assert resolved[0].attrs["alarm_id"] == alarms[0].attrs["alarm_id"]


def test_deadband_thins_noise_keeps_changes_and_a_heartbeat(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    values = [500, 503, 498, 505, 530, 531, 529, 400, 401, 402]
    passed = []
    for i, v in enumerate(values):
        got = rig.feed(Reading("boiler-1", "power_w", v, T0 + i * 6_000))
        passed.extend(r.value for r in got if isinstance(r, Reading))
    assert passed == [500, 530, 400]
    # Unchanged for a minute: the heartbeat lets one through.
    got = rig.feed(Reading("boiler-1", "power_w", 401, T0 + 60_000 + 42_000))
    assert [r.value for r in got if isinstance(r, Reading)] == [401]
    # Rate limit: a big change 1 s later waits.
    assert rig.feed(Reading("boiler-1", "power_w", 900, T0 + 103_000)) == []
    assert rig.rules.suppressed == 8
    # Other points and other sources pass untouched.
    other = Reading("boiler-1", "voltage_v", 230.1, T0)
    assert rig.feed(other) == [other]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "[[rules]]\nid='r'\ntype='threshold'\nsource='boiler-2'\npoint='x'\nabove=1\n",
            'rules[0].source: unknown device (got "boiler-2"); expected the id of a device in [[sources]] '
            '(boiler-1, door-1) - did you mean "boiler-1"?',
        ),
        (
            "[[rules]]\nid='r'\ntype='threshold'\nsource='boiler-1'\npoint='x'\nabove=1\nbelow=0\n",
            "rules[0].above: a threshold rule needs exactly one limit; "
            "expected either above = N or below = N",
        ),
        (
            "[[rules]]\nid='r'\ntype='threshold'\nsource='boiler-1'\npoint='x'\nabove=80\nclear_at=85\n",
            "rules[0].clear_at: clear_at must not be above the limit (got 85); expected clear_at <= 80",
        ),
        (
            "[[rules]]\nid='r'\ntype='door_left_open'\nsources=['door-1']\nafter_s=0\n",
            "rules[0].after_s: out of range (got 0); expected a number > 0",
        ),
        (
            "[[rules]]\nid='r'\ntype='deadband'\nsource='boiler-1'\npoints=['p']\nmin_interval_s=60\nmax_interval_s=30\n",
            "rules[0].min_interval_s: min_interval_s must be below max_interval_s (got 60); "
            "expected min_interval_s < max_interval_s",
        ),
        (
            "[[rules]]\nid='r'\ntype='threshhold'\n",
            None,
        ),
    ],
)
def test_bad_rules_name_the_key_the_value_and_the_fix(rule: str, message: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config((SOURCES + rule).encode())
    shown = [str(p) for p in info.value.problems]
    if message is None:
        assert shown == [
            'rules[0].type: unknown type (got "threshhold"); '
            "expected one of: threshold, door_left_open, deadband"
        ]
    else:
        assert message in shown, shown
