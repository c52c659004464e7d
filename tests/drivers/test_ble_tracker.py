"""What a sensor's adverts mean upstream: door events, dedup, tamper episodes, device events, key
errors, presence. (The downgrade and replay guards: test_ble_authentic.py.)"""

from __future__ import annotations

import logging

import pytest

from drivers.ble import mibeacon
from drivers.ble.adverts import BTHOME_UUID, MIBEACON_UUID, Advert, mac_bytes
from drivers.ble.decode import decode_advert
from drivers.ble.simulator import SimulatedSensor
from drivers.ble.tracker import SensorTracker
from gateway.core import Event, Klass, Reading, Record

KEY = bytes.fromhex("017e52d2684779298709b117c0a75a7b")
XIAOMI = "E4:AA:EC:81:21:AE"


def tracker(**kw: float) -> SensorTracker:
    return SensorTracker(
        "door-back",
        XIAOMI,
        kw.get("offline", 3600),
        kw.get("telemetry", 300),
        0.0,
        keyed=bool(kw.get("keyed")),
    )


def feed_raw(t: SensorTracker, uuid: str, data: bytes, ts: float, key: bytes | None = KEY) -> list[Record]:
    """One advert of `data` (service data bytes as the radio hands them over)."""
    advert = Advert(t.address, -60, {uuid: data}, ts=ts)
    result = decode_advert(advert, mac_bytes(t.address), key)
    assert result is not None
    return t.on_advert(advert, result, int(ts * 1000))


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


def test_tamper_is_one_warning_per_episode_ended_by_the_door_closing() -> None:
    # Xiaomi sends "forcibly removed" (0x4A0F) only as 1; xiaomi-ble clears it when the door closes.
    t = tracker()
    mac = mac_bytes(XIAOMI)
    frame = 0

    def xiaomi(*objects: tuple[int, bytes]) -> bytes:
        nonlocal frame
        frame += 1
        return mibeacon.encode(mac, 0x098B, frame, list(objects), key=KEY, ext_counter=0)

    feed_raw(t, MIBEACON_UUID, xiaomi((0x1019, b"\x01")), 1.0)
    first = feed_raw(t, MIBEACON_UUID, xiaomi((0x1019, b"\x00"), (0x4A0F, b"\x01")), 2.0)
    assert kinds(first) == ["door_open=True", "door_opened", "sensor_tampered"]
    for i in range(3):  # the device keeps saying so: same episode
        assert "sensor_tampered" not in kinds(feed_raw(t, MIBEACON_UUID, xiaomi((0x4A0F, b"\x01")), 3.0 + i))
    assert kinds(feed_raw(t, MIBEACON_UUID, xiaomi((0x1019, b"\x01")), 9.0)) == [
        "door_open=False",
        "door_closed",
    ]
    again = feed_raw(t, MIBEACON_UUID, xiaomi((0x1019, b"\x00"), (0x4A0F, b"\x01")), 10.0)
    assert kinds(again).count("sensor_tampered") == 1  # a new episode


def test_any_closed_report_ends_the_tamper_episode() -> None:
    # Issue 28: closed → tamper → "closed" report (no change: the door never opened) → tamper gave
    # one warning, because only an open→closed change ended the episode; xiaomi-ble clears it on
    # any closed report, so this is two episodes and two warnings.
    t = tracker()
    mac = mac_bytes(XIAOMI)
    frame = 0

    def xiaomi(*objects: tuple[int, bytes]) -> list[Record]:
        nonlocal frame
        frame += 1
        data = mibeacon.encode(mac, 0x098B, frame, list(objects), key=KEY, ext_counter=0)
        return feed_raw(t, MIBEACON_UUID, data, float(frame))

    closed, tamper = (0x1019, b"\x01"), (0x4A0F, b"\x01")
    warnings = kinds(xiaomi(closed)) + kinds(xiaomi(tamper)) + kinds(xiaomi(closed)) + kinds(xiaomi(tamper))
    assert warnings.count("sensor_tampered") == 2
    assert "door_closed" not in warnings and t.door_open is False  # the door itself never moved


def test_undefined_event_codes_are_counted_never_events(caplog: pytest.LogCaptureFixture) -> None:
    t = tracker()
    records: list[Record] = []
    for i, objects in enumerate(["3afe", "3a07", "3c0305", "3b00ba", "3a81"]):
        records += feed_raw(t, BTHOME_UUID, bytes.fromhex(f"40 00{i:02x} {objects}"), 1.0 + i)
    events = [(r.kind, r.attrs) for r in records if isinstance(r, Event)]
    assert events == [("button_pressed", {"button": "button", "press": "hold_release"})]  # 0x81: defined
    assert t.counts["unknown_object"] == 4
    assert sum("unknown_object" in m for m in caplog.messages) == 1  # logged once


def test_bthome_tamper_off_ends_the_episode() -> None:
    t = tracker()
    assert "sensor_tampered" in kinds(feed_raw(t, BTHOME_UUID, bytes.fromhex("40" + "0001" + "2b01"), 1.0))
    assert kinds(feed_raw(t, BTHOME_UUID, bytes.fromhex("40" + "0002" + "2b01"), 2.0)) == []
    assert kinds(feed_raw(t, BTHOME_UUID, bytes.fromhex("40" + "0003" + "2b00"), 3.0)) == []
    assert kinds(feed_raw(t, BTHOME_UUID, bytes.fromhex("40" + "0004" + "2b01"), 4.0)) == ["sensor_tampered"]


def test_device_reset_is_reported_and_leaves_the_door_alone() -> None:
    # Issue 16: MiBeacon 0x1019 = 3 (a battery change) was published as door_opened.
    t = tracker()
    mac = mac_bytes(XIAOMI)
    feed_raw(t, MIBEACON_UUID, mibeacon.encode(mac, 0x098B, 1, [(0x1019, b"\x01")], key=KEY), 1.0)
    records = feed_raw(t, MIBEACON_UUID, mibeacon.encode(mac, 0x098B, 2, [(0x1019, b"\x03")], key=KEY), 2.0)
    assert kinds(records) == ["sensor_reset"] and t.door_open is False
    event = records[0]
    assert (
        isinstance(event, Event) and event.severity == "warning" and event.attrs == {"reported_by": "device"}
    )


def test_remote_events_keep_their_button_and_dimmer() -> None:
    t = tracker()
    records = feed_raw(t, BTHOME_UUID, bytes.fromhex("44" + "0007" + "3a00" + "3a02" + "3c020a"), 1.0)
    events = [(r.kind, r.attrs) for r in records if isinstance(r, Event)]
    assert events == [
        ("button_pressed", {"button": "button_2", "press": "double_press"}),
        ("dimmer_rotated", {"dimmer": "dimmer", "direction": "right", "steps": 10}),
    ]
    assert not any(isinstance(r, Reading) and r.point.startswith("dimmer") for r in records)


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
