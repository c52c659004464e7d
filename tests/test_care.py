"""Care watch over simulated days with a controlled clock: the real processor, alarm book and state
database; the household's devices are played as the records the Modbus and BLE lanes emit."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config import parse_config
from gateway.core import Event, Klass, Reading, Record
from gateway.lanes.alarms import AlarmBook
from gateway.lanes.care.watch import CareWatch
from gateway.storage.state import StateStore, state_path
from tests.support.configs import source_toml

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
# Monday 2026-03-02 00:00 local time.
START = dt.datetime(2026, 3, 2, 0, 0, tzinfo=TZ)

SOURCES = source_toml(
    "modbus",
    "bus-1",
    "meters",
    [
        {"id": "elec-1a", "unit": 1, "profile": "eastron_sdm120"},
        {"id": "water-1a", "unit": 2, "profile": "generic_water"},
    ],
    endpoint="tcp://127.0.0.1:5020",
) + source_toml(
    "ble", "ble-1", "sensors", [{"id": "door-1a", "address": "54:48:E6:8F:80:A5"}], backend="simulated"
)


def care_toml(household: str = "", care: str = "") -> str:
    return f"""
[gateway]
id = "gw"
site = "s"
timezone = "Asia/Shanghai"
{SOURCES}
[care]
renotify_min = 0
{care}
[[care.households]]
id = "flat-1a"
door = "door-1a"
water_meter = "water-1a"
electricity_meter = "elec-1a"
{household}
"""


def at(day: int, hhmm: str) -> int:
    """Epoch ms of local `hhmm` on day `day` (0 = START's date)."""
    h, m = map(int, hhmm.split(":"))
    return int((START + dt.timedelta(days=day, hours=h, minutes=m)).timestamp() * 1000)


def minute_of_day(ts_ms: int) -> int:
    local = dt.datetime.fromtimestamp(ts_ms / 1000, TZ)
    return local.hour * 60 + local.minute


Behaviour = Callable[["Home", int], None]


@dataclass
class Home:
    """A flat's meters and door as the lanes report them, once a minute (meters) or on change (door)."""

    volume_m3: float = 12.0
    energy_kwh: float = 3000.0
    standby_w: float = 50.0  # the fridge: below the default 80 W standby baseline
    load_w: float = 0.0
    water_running: bool = False
    door_dead: bool = False
    meters_dead: bool = False
    pending: list[Record] = field(default_factory=list)

    def minute(self, ts: int) -> list[Record]:
        self.energy_kwh += (self.standby_w + self.load_w) / 60 / 1000
        if self.water_running:
            self.volume_m3 += 0.008
        out = list(self.pending)
        self.pending.clear()
        if not self.meters_dead:
            out.append(Reading("elec-1a", "energy_import_kwh", round(self.energy_kwh, 3), ts, counter=True))
            out.append(Reading("elec-1a", "power_w", self.standby_w + self.load_w, ts))
            out.append(Reading("water-1a", "volume_m3", round(self.volume_m3, 3), ts, counter=True))
        return out

    def door(self, ts: int) -> None:
        if self.door_dead:
            return
        self.pending.append(Event("door-1a", "door_opened", ts))
        self.pending.append(Reading("door-1a", "door_open", True, ts, klass=Klass.STATE))
        self.pending.append(Event("door-1a", "door_closed", ts + 30_000))
        self.pending.append(Reading("door-1a", "door_open", False, ts + 30_000, klass=Klass.STATE))


def usual_day(home: Home, ts: int) -> None:
    """Up at 07:30 (shower, breakfast), out 09:00-11:00, cooking at noon and 18:00, bed at 22:30."""
    m = minute_of_day(ts)
    home.water_running = 450 <= m < 458 or 720 <= m < 724 or 1140 <= m < 1146
    home.load_w = 1800.0 if (470 <= m < 490 or 715 <= m < 740 or 1075 <= m < 1100) else 0.0
    if m in (540, 660):
        home.door(ts)


def does_nothing(home: Home, _ts: int) -> None:
    home.water_running = False
    home.load_w = 0.0


class Sim:
    def __init__(self, tmp_path: Path, toml: str, start_ms: int | None = None) -> None:
        self.tmp_path = tmp_path
        config = parse_config(toml.encode()).config
        assert config.care is not None
        self.section, self.timezone = config.care, config.gateway.timezone
        self.now = start_ms if start_ms is not None else at(0, "00:00")
        self.home = Home()
        self.events: list[Event] = []
        self.open()

    def open(self) -> None:
        self.store = StateStore(state_path(self.tmp_path))
        self.book = AlarmBook(self.store)
        self.watch = CareWatch(self.section, self.book, self.store, self.now, self.timezone)

    def restart(self) -> None:
        """The gateway stops cleanly and starts again with the same state database."""
        self.watch.close(self.now)
        self.store.close()
        self.open()

    def crash(self) -> None:
        """kill -9: nothing saved beyond what was already on disk."""
        self.store.close()
        self.open()

    def run(self, until_ms: int, behaviour: Behaviour | None = usual_day) -> None:
        """Minute by minute; `behaviour=None`: the resident does nothing (only standby power)."""
        while self.now < until_ms:
            self.now += 60_000
            (behaviour or does_nothing)(self.home, self.now)
            for record in self.home.minute(self.now):
                for out in self.watch.process(record):
                    if isinstance(out, Event) and out.source_id == "flat-1a":
                        self.events.append(out)
            for tick_second in range(
                0, 60, 20
            ):  # tick a few times a minute, like the daemon does every second
                for out in self.watch.tick(self.now + tick_second * 1000):
                    assert isinstance(out, Event)
                    self.events.append(out)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def first(self, kind: str) -> Event:
        return next(e for e in self.events if e.kind == kind and e.attrs.get("notify", 1) == 1)


def test_a_normal_household_raises_nothing_over_a_week(tmp_path: Path) -> None:
    sim = Sim(tmp_path, care_toml(care="pattern_break = true\npattern_min_days = 3"))
    sim.run(at(7, "00:00"))
    assert sim.events == [], sim.kinds()
    assert sim.watch.households["flat-1a"].last_activity_ms() is not None


def test_a_household_going_silent_raises_one_alarm_at_the_limit_and_resolves_on_activity(
    tmp_path: Path,
) -> None:
    sim = Sim(tmp_path, care_toml(care="door_inactive_day_h = 48"))
    sim.run(at(1, "08:30"))  # a usual day, then breakfast (until 08:10) on day 1...
    last_activity = sim.watch.households["flat-1a"].last_activity_ms()
    # Cooking power ends 08:09; the energy counter's 10-minute average may see it a little later.
    assert last_activity is not None and at(1, "08:09") <= last_activity <= at(1, "08:20")
    sim.run(at(2, "10:00"), behaviour=None)  # ...and nobody uses anything from here on
    alarms = [e for e in sim.events if e.kind == "care_no_activity"]
    assert len(alarms) == 1
    alarm = alarms[0]
    assert alarm.severity == "alarm" and alarm.klass == Klass.ALARM
    # A silence within the day: the day limit (12 h) applies, 20:10, before night starts at 22:00.
    assert 0 <= alarm.ts_ms - (last_activity + 12 * 3_600_000) < 60_000
    assert alarm.attrs["household"] == "flat-1a" and alarm.attrs["limit_kind"] == "day"
    assert alarm.attrs["last_activity_ms"] == last_activity
    assert alarm.attrs["missing_signals"] == []
    assert set(alarm.attrs["signals"]) == {"door", "water", "electricity"}
    # The resident opens the door: the alarm resolves, with the same alarm id.
    sim.home.door(sim.now + 60_000)
    sim.run(sim.now + 120_000, behaviour=None)
    resolved = [e for e in sim.events if e.kind == "care_resolved"]
    assert len(resolved) == 1
    assert resolved[0].attrs["alarm_id"] == alarm.attrs["alarm_id"]
    assert resolved[0].attrs["alarm_kind"] == "care_no_activity" and resolved[0].attrs["signal"] == "door"
    assert not sim.book.open_by_key


def test_a_silence_spanning_the_night_gets_the_night_limit(tmp_path: Path) -> None:
    # Last activity 20:00. 12 h later (08:00) is not enough: the silence spans a night, whose limit
    # is 16 h, so the alarm comes at 12:00.
    sim = Sim(tmp_path, care_toml(care="door_inactive_day_h = 48"), start_ms=at(0, "19:58"))

    def one_cup_of_tea(home: Home, ts: int) -> None:
        home.water_running = ts <= at(0, "20:00")

    sim.run(at(1, "13:00"), behaviour=one_cup_of_tea)
    alarm = sim.first("care_no_activity")
    assert abs(alarm.ts_ms - at(1, "12:00")) <= 60_000
    assert alarm.attrs["limit_h"] == 16 and alarm.attrs["limit_kind"] == "night"


def test_a_dead_door_sensor_is_missing_data_not_a_silent_resident(tmp_path: Path) -> None:
    sim = Sim(tmp_path, care_toml(household="door_inactive_day_h = 6"))
    sim.run(at(0, "12:00"))
    sim.home.door_dead = True
    sim.home.pending.append(Event("door-1a", "device_offline", sim.now, {"silent_s": 10800}, "warning"))
    sim.run(at(3, "12:00"))
    assert "care_no_activity" not in sim.kinds()
    assert "care_door_inactive" not in sim.kinds()
    missing = [e for e in sim.events if e.kind == "care_data_missing"]
    assert len(missing) == 1
    assert missing[0].attrs["signal"] == "door" and missing[0].attrs["reason"] == "device offline"
    assert missing[0].severity == "warning"
    # The sensor comes back: the data is restored, once.
    sim.home.door_dead = False
    sim.home.pending.append(Event("door-1a", "device_online", sim.now))
    sim.run(sim.now + 120_000)
    assert sim.kinds().count("care_data_restored") == 1


def test_when_every_signal_is_missing_no_care_alarm_is_raised(tmp_path: Path) -> None:
    sim = Sim(tmp_path, care_toml())
    sim.run(at(0, "09:30"))
    sim.home.meters_dead = True
    sim.home.door_dead = True
    sim.home.pending.append(Event("door-1a", "device_offline", sim.now, {}, "warning"))
    sim.run(at(2, "12:00"), behaviour=None)
    assert "care_no_activity" not in sim.kinds()
    missing = sorted(e.attrs["signal"] for e in sim.events if e.kind == "care_data_missing")
    assert missing == ["door", "electricity", "water"]


def test_a_silent_resident_with_one_dead_sensor_is_reported_and_the_gap_is_named(tmp_path: Path) -> None:
    sim = Sim(tmp_path, care_toml(care="door_inactive_day_h = 48"))
    sim.run(at(0, "12:00"))
    sim.home.door_dead = True
    sim.home.pending.append(Event("door-1a", "device_offline", sim.now, {}, "warning"))
    sim.run(at(1, "12:00"), behaviour=None)
    alarm = sim.first("care_no_activity")
    assert alarm.attrs["missing_signals"] == ["door"]


def test_a_restart_in_the_middle_keeps_the_timers(tmp_path: Path) -> None:
    reference = Sim(tmp_path / "a", care_toml(care="door_inactive_day_h = 48"))
    reference.run(at(1, "08:30"))
    reference.run(at(2, "10:00"), behaviour=None)
    expected = reference.first("care_no_activity").ts_ms

    sim = Sim(tmp_path / "b", care_toml(care="door_inactive_day_h = 48"))
    sim.run(at(1, "08:30"))
    sim.run(at(1, "15:00"), behaviour=None)
    sim.restart()  # a clean restart mid-silence
    sim.run(at(2, "10:00"), behaviour=None)
    assert sim.first("care_no_activity").ts_ms == expected
    # And after the alarm, a crash: it is neither forgotten nor raised again; the ack survives too.
    alarm_id = sim.first("care_no_activity").attrs["alarm_id"]
    outcome, _ = sim.book.ack(alarm_id, sim.now, "warden", "local")
    assert outcome == "ok"
    sim.crash()
    sim.run(sim.now + 3_600_000, behaviour=None)
    assert sim.kinds().count("care_no_activity") == 1
    assert sim.book.by_id[alarm_id].acked_by == "warden"
    sim.home.door(sim.now + 60_000)
    sim.run(sim.now + 120_000, behaviour=None)
    resolved = [e for e in sim.events if e.kind == "care_resolved"]
    assert [e.attrs["alarm_id"] for e in resolved] == [alarm_id]
    assert resolved[0].attrs["acked"] is True


def test_front_door_not_opened_for_the_daytime_limit(tmp_path: Path) -> None:
    def stays_in(home: Home, ts: int) -> None:
        usual_day(home, ts)
        home.pending = [r for r in home.pending if r.source_id != "door-1a"]

    sim = Sim(tmp_path, care_toml(household="door_inactive_day_h = 20"), start_ms=at(0, "08:00"))
    sim.home.door(at(0, "08:01"))
    sim.run(at(2, "22:00"), behaviour=stays_in)
    alarms = [e for e in sim.events if e.kind == "care_door_inactive"]
    assert len(alarms) == 1
    # 08:01 -> 22:00 is 13 h 59 min of day; 6 h 01 min more from 07:00 the next day = 13:01.
    assert abs(alarms[0].ts_ms - at(1, "13:01")) <= 60_000
    assert "care_no_activity" not in sim.kinds()  # water and electricity show the resident is fine


def test_water_running_too_long_raises_and_resolves_when_it_stops(tmp_path: Path) -> None:
    def tap_left_open(home: Home, ts: int) -> None:
        usual_day(home, ts)
        if at(0, "14:00") <= ts < at(0, "15:10"):
            home.water_running = True

    sim = Sim(tmp_path, care_toml(), start_ms=at(0, "06:00"))
    sim.run(at(0, "18:00"), behaviour=tap_left_open)
    alarms = [e for e in sim.events if e.kind == "care_continuous_water"]
    assert len(alarms) == 1
    # The first rise is seen at 14:01 after the 14:00 reading: the run counts from 14:00.
    assert abs(alarms[0].ts_ms - at(0, "14:45")) <= 60_000
    resolved = [
        e
        for e in sim.events
        if e.kind == "care_resolved" and e.attrs["alarm_kind"] == "care_continuous_water"
    ]
    assert len(resolved) == 1
    # The last rise was at 15:10; the run ends after the 180 s pause.
    assert at(0, "15:12") <= resolved[0].ts_ms <= at(0, "15:15")


def test_standby_consumption_is_not_activity(tmp_path: Path) -> None:
    sim = Sim(tmp_path, care_toml(care="door_inactive_day_h = 48"), start_ms=at(0, "08:00"))
    sim.home.standby_w = 75.0  # fridge and router: under the 80 W baseline
    sim.run(at(0, "21:00"), behaviour=None)
    assert sim.kinds().count("care_no_activity") == 1
    sim2 = Sim(tmp_path / "b", care_toml(care="door_inactive_day_h = 48"), start_ms=at(0, "08:00"))
    sim2.home.standby_w = 400.0  # someone is home, cooking, watching TV
    sim2.run(at(0, "21:00"), behaviour=None)
    assert "care_no_activity" not in sim2.kinds()


def test_pattern_break_heuristic_after_learning(tmp_path: Path) -> None:
    sim = Sim(
        tmp_path,
        care_toml(household="pattern_break = true", care="pattern_min_days = 5\ndoor_inactive_day_h = 48"),
    )
    sim.run(at(6, "00:00"))
    assert "care_pattern_break" not in sim.kinds()

    def quiet_morning(home: Home, ts: int) -> None:
        # Only the kettle at 07:30; no shower, no cooking, no going out.
        m = minute_of_day(ts)
        home.water_running = False
        home.load_w = 1800.0 if 450 <= m < 453 else 0.0

    sim.run(at(6, "13:30"), behaviour=quiet_morning)
    breaks = [e for e in sim.events if e.kind == "care_pattern_break"]
    assert len(breaks) == 1
    attrs = breaks[0].attrs
    assert attrs["heuristic"] is True and attrs["days_learned"] >= 5
    assert attrs["actual_active_min"] < 0.3 * attrs["expected_active_min"]
    assert "care_no_activity" not in sim.kinds()
