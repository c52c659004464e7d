"""What a sensor's adverts mean upstream: door events, dedup, replay guard, key errors, presence."""

from __future__ import annotations

import logging

import pytest

from drivers.ble.decode import decode_advert
from drivers.ble.simulator import SimulatedSensor
from drivers.ble.tracker import REBASE_AFTER, SensorTracker
from gateway.core import Event, Klass, Reading, Record

KEY = bytes.fromhex("017e52d2684779298709b117c0a75a7b")


def tracker(**kw: float) -> SensorTracker:
    return SensorTracker(
        "door-back", "E4:AA:EC:81:21:AE", kw.get("offline", 3600), kw.get("telemetry", 300), 0.0
    )


def feed(t: SensorTracker, sensor: SimulatedSensor, ts: float, key: bytes | None = KEY) -> list[Record]:
    advert = sensor.advert(ts)
    result = decode_advert(advert, sensor.mac, key)
    assert result is not None
    return t.on_advert(advert, result, int(ts * 1000))


def kinds(records: list[Record]) -> list[str]:
    return [r.kind if isinstance(r, Event) else f"{r.point}={r.value}" for r in records]


@pytest.mark.parametrize("model", ["MCCGQ02HL", "SBDW-002C", "CGH1"])
def test_door_changes_become_events_once_and_repeats_are_dropped(model: str) -> None:
    sensor = SimulatedSensor("E4:AA:EC:81:21:AE", model, KEY if model != "CGH1" else None)
    t = tracker()
    first = feed(t, sensor, 1.0)
    # First sight: the state, battery and RSSI, but no door_closed event (we did not see it close).
    assert kinds(first) == ["door_open=False", "battery_pct=97", "rssi_dbm=-70"]
    assert next(r.klass for r in first if isinstance(r, Reading)) == Klass.STATE
    assert feed(t, sensor, 1.1) == []  # the same transmission again
    sensor.door_open = True
    sensor.next_packet()
    assert kinds(feed(t, sensor, 2.0)) == ["door_open=True", "door_opened"]
    assert feed(t, sensor, 2.05) == [] and t.counts["duplicates"] == 2
    sensor.next_packet()  # heartbeat, nothing changed
    assert feed(t, sensor, 30.0) == []
    sensor.door_open = False
    sensor.next_packet()
    assert kinds(feed(t, sensor, 31.0)) == ["door_open=False", "door_closed"]


def test_device_reported_left_open_is_one_warning_per_episode() -> None:
    sensor = SimulatedSensor("E4:AA:EC:81:21:AE", "MCCGQ02HL", KEY)
    t = tracker()
    feed(t, sensor, 1.0)
    sensor.door_open, sensor.left_open = True, True
    for i in range(3):
        sensor.next_packet()
        records = feed(t, sensor, 2.0 + i)
        assert kinds(records).count("door_left_open") == (1 if i == 0 else 0)
    sensor.door_open, sensor.left_open = False, False
    sensor.next_packet()
    assert "door_closed" in kinds(feed(t, sensor, 9.0))
    sensor.door_open, sensor.left_open = True, True
    sensor.next_packet()
    assert kinds(feed(t, sensor, 10.0)).count("door_left_open") == 1


def test_replayed_encrypted_advert_is_dropped_and_a_real_counter_restart_is_accepted() -> None:
    sensor = SimulatedSensor("54:48:E6:8F:80:A5", "SBDW-002C", KEY, counter=1000)
    t = tracker()
    feed(t, sensor, 1.0)
    recorded_open = None
    sensor.door_open = True
    sensor.next_packet()
    recorded_open = sensor.advert(2.0)
    feed(t, sensor, 2.0)
    sensor.door_open = False
    sensor.next_packet()
    assert "door_closed" in kinds(feed(t, sensor, 3.0))
    # An attacker replays the recorded "open" advert: its counter is old, so nothing happens.
    result = decode_advert(recorded_open, sensor.mac, KEY)
    assert result is not None
    assert t.on_advert(recorded_open, result, 4000) == [] and t.counts["replays"] == 1
    # The sensor's battery is changed: its counter restarts at 1. After REBASE_AFTER increasing
    # adverts the new counter is accepted, and upstream is told.
    sensor.counter, sensor.packet_id = 1, 100
    out: list[Record] = []
    for i in range(REBASE_AFTER):
        sensor.door_open = i % 2 == 0
        sensor.next_packet()
        out += feed(t, sensor, 10.0 + i)
    assert kinds(out)[:2] == ["sensor_counter_reset", "door_open=True"]


def test_wrong_bindkey_is_one_clear_error_until_it_decrypts_again(caplog: pytest.LogCaptureFixture) -> None:
    sensor = SimulatedSensor("E4:AA:EC:81:21:AE", "MCCGQ02HL", KEY)
    t = tracker()
    caplog.set_level(logging.INFO, "lintel.ble")
    events = []
    for i in range(20):
        sensor.next_packet()
        events += feed(t, sensor, 1.0 + i, key=bytes(16))
    assert kinds(events) == ["sensor_decrypt_failed"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["door-back: cannot decrypt: wrong bindkey?"]
    assert t.counts["wrong_key"] == 20 and t.online is True  # it is there, we just cannot read it
    sensor.next_packet()
    assert "door_open=False" in kinds(feed(t, sensor, 30.0))
    assert any("decode again" in r.getMessage() for r in caplog.records)


def test_sleepy_sensor_goes_offline_after_the_silence_and_comes_back() -> None:
    sensor = SimulatedSensor("E4:AA:EC:81:21:AE", "MCCGQ02HL", KEY)
    t = tracker(offline=3600)
    feed(t, sensor, 10.0)
    assert t.check_presence(3000.0, 0) == []  # a quiet hour is normal for a door sensor
    offline = t.check_presence(3611.0, 0)
    assert kinds(offline) == ["device_offline"] and offline[0].attrs["silent_s"] == 3601  # type: ignore[union-attr]
    assert t.check_presence(5000.0, 0) == []  # once
    sensor.next_packet()
    assert kinds(feed(t, sensor, 6000.0))[0] == "device_online"


def test_a_configured_sensor_never_heard_is_reported() -> None:
    t = tracker(offline=600)
    records = t.check_presence(601.0, 0)
    assert kinds(records) == ["device_offline"] and records[0].attrs["never_heard"] is True  # type: ignore[union-attr]


def test_telemetry_is_rate_limited_state_is_not() -> None:
    sensor = SimulatedSensor("E4:AA:EC:81:21:AE", "SBDW-002C", KEY)
    t = tracker(telemetry=300)
    feed(t, sensor, 1.0)
    sensor.battery_pct = 96
    sensor.next_packet()
    assert feed(t, sensor, 60.0) == []  # battery changed, but within the interval
    sensor.next_packet()
    assert kinds(feed(t, sensor, 302.0)) == ["battery_pct=96", "rssi_dbm=-70"]
