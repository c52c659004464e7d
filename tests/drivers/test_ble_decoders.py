"""Our BLE decoders against real adverts from the upstream decoders' test suites, the BTHome spec's
own examples, our encoders (round trip) and random bytes (never an exception)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble import bthome, mibeacon, qingping
from drivers.ble.adverts import (
    BTHOME_UUID,
    MIBEACON_UUID,
    QINGPING_UUID,
    Advert,
    Decoded,
    DeviceEvent,
    Undecodable,
    mac_bytes,
)
from drivers.ble.decode import decode_advert

ANY_MAC = mac_bytes("A4:C1:38:00:00:01")

GOLDEN = [
    # (id, decoder, address, payload hex, bindkey, expected values, extra expectations)
    ("shelly-blu-door-window", bthome.decode, "3C:2E:F5:00:00:01", "402d01", None, {"window": True}, {}),
    ("bthome-opening", bthome.decode, "3C:2E:F5:00:00:02", "401100", None, {"opening": False}, {}),
    (
        "shelly-blu-ht",
        bthome.decode,
        "3C:2E:F5:00:00:03",
        "40002e01641e012e34451601",
        None,
        # The vector also carries object 0x1E (light = on) between battery and humidity.
        {"battery_pct": 100, "light": True, "humidity_pct": 52, "temperature_c": 27.8},
        {"packet_id": 46},
    ),
    (
        "bthome-encrypted",
        bthome.decode,
        "54:48:E6:8F:80:A5",
        "41a47266c95f730011223378237214",
        "231d39c1d7cc1ab1aee224cd096db932",
        {"temperature_c": 25.06, "humidity_pct": 50.55},
        {"encrypted": True, "counter": 0x33221100},
    ),
    # bthome-ble's own test vectors (github:Bluetooth-Devices/bthome-ble tests/test_parser_v2.py,
    # 3.20.0) that our decoder did not match (issue 28): the MAC-included flag (info bit 1), plain and
    # encrypted, and the undefined button code 0xFE (no event; counted: test below).
    (
        "bthome-ble-with-mac",
        bthome.decode,
        "A4:C1:38:8D:18:B2",
        "42b2188d38c1a404138a01",
        None,
        {"pressure_hpa": 1008.83},
        {},
    ),
    (
        "bthome-ble-with-mac-encrypted",
        bthome.decode,
        "54:48:E6:8F:80:A5",
        "43a5808fe64854f196c06ffb4900112233f08ecbde",
        "231d39c1d7cc1ab1aee224cd096db932",
        {"temperature_c": 25.06, "humidity_pct": 50.55},
        {"encrypted": True, "counter": 0x33221100},
    ),
    (
        "bthome-ble-invalid-button-event",
        bthome.decode,
        "A4:C1:38:8D:18:B2",
        "403afe",
        None,
        {},
        {"events": (), "unknown_objects": 1},
    ),
    (
        "xiaomi-mccgq02hl-encrypted",
        mibeacon.decode,
        "E4:AA:EC:81:21:AE",
        "58588b09a3ae2181ecaae40e2c553c040000d28a500c",
        "017e52d2684779298709b117c0a75a7b",
        {"opening": True, "door_left_open": True},
        {"encrypted": True, "model": "MCCGQ02HL", "packet_id": 0xA3},
    ),
    (
        "qingping-cgh1-mibeacon-v4",
        mibeacon.decode,
        "A4:C1:38:0A:03:D6",
        "5040d60301d6030a38c1a419100100",
        None,
        {"opening": True, "door_left_open": False},
        {"model": "CGH1"},
    ),
    (
        "qingping-cgh1-own-format",
        qingping.decode,
        "58:2D:34:40:3A:4D",
        "c8044d3a40342d580401010f01ef",
        None,
        {"opening": False, "door_left_open": False},
        {"model": "CGH1", "packet_id": 0xEF},
    ),
]


@pytest.mark.parametrize("case", GOLDEN, ids=[c[0] for c in GOLDEN])
def test_golden_vectors_decode_exactly(case: tuple) -> None:  # type: ignore[type-arg]
    _, decode, address, payload, key, expected, extra = case
    result = decode(mac_bytes(address), bytes.fromhex(payload), bytes.fromhex(key) if key else None)
    assert isinstance(result, Decoded), result
    assert result.values == expected
    for name, value in extra.items():
        assert getattr(result, name) == value, name


# Every example of the BTHome v2 format specification (https://bthome.io/format/, 2026-04-30):
# object bytes → our name and value. Names carry units; binary sensors keep the spec's meaning of 1.
SPEC_EXAMPLES = [
    ("0009", "packet_id", 9),  # not a value: checked below
    ("0161", "battery_pct", 97),
    ("02ca09", "temperature_c", 25.06),
    ("03bf13", "humidity_pct", 50.55),
    ("04138a01", "pressure_hpa", 1008.83),
    ("05138a14", "illuminance_lux", 13460.67),
    ("065e1f", "mass_kg", 80.3),
    ("073e1d", "mass_lb", 74.86),
    ("08ca06", "dew_point_c", 17.38),
    ("0960", "count", 96),
    ("0a138a14", "energy_kwh", 1346.067),
    ("0b021b00", "power_w", 69.14),
    ("0c020c", "voltage_v", 3.074),
    ("0d120c", "pm25_ugm3", 3090),
    ("0e021c", "pm10_ugm3", 7170),
    ("0f01", "generic", True),
    ("1001", "power_on", True),
    ("1100", "opening", False),
    ("12e204", "co2_ppm", 1250),
    ("133301", "tvoc_ugm3", 307),
    ("14020c", "moisture_pct", 30.74),
    ("1501", "battery_low", True),
    ("1601", "battery_charging", True),
    ("1700", "carbon_monoxide", False),
    ("1801", "cold", True),
    ("1900", "connectivity", False),
    ("1a00", "door", False),
    ("1b01", "garage_door", True),
    ("1c01", "gas", True),
    ("1d00", "heat", False),
    ("1e01", "light", True),
    ("1f01", "unlocked", True),
    ("2001", "wet", True),
    ("2100", "motion", False),
    ("2201", "moving", True),
    ("2301", "occupancy", True),
    ("2400", "plugged", False),
    ("2500", "presence", False),
    ("2601", "problem", True),
    ("2701", "running", True),
    ("2800", "safe", False),  # 0 = unsafe
    ("2801", "safe", True),  # 1 = safe
    ("2901", "smoke", True),
    ("2a00", "sound", False),
    ("2b00", "tamper", False),
    ("2c01", "vibration", True),
    ("2d01", "window", True),
    ("2e23", "humidity_pct", 35),
    ("2f23", "moisture_pct", 35),
    ("3d0960", "count", 24585),
    ("3e2a2c0960", "count", 1611213866),
    ("3f020c", "rotation_deg", 307.4),
    ("400c00", "distance_mm", 12),
    ("414e00", "distance_m", 7.8),
    ("424e3400", "duration_s", 13.39),
    ("434e34", "current_a", 13.39),
    ("444e34", "speed_m_s", 133.9),
    ("451101", "temperature_c", 27.3),
    ("4632", "uv_index", 5.0),
    ("478756", "volume_l", 2215.1),
    ("48dc87", "volume_ml", 34780),
    ("49dc87", "flow_m3_h", 34.78),
    ("4a020c", "voltage_v", 307.4),
    ("4b138a14", "gas_m3", 1346.067),
    ("4c41018a01", "gas_m3", 25821.505),
    ("4d12138a14", "energy_kwh", 344593.17),
    ("4e87562a01", "volume_l", 19551.879),
    ("4f87562a01", "water_l", 19551.879),
    ("505d396164", "timestamp_s", 1684093277),
    ("518756", "acceleration_m_s2", 22.151),
    ("528756", "gyroscope_deg_s", 22.151),
    ("530c48656c6c6f20576f726c6421", "text", "Hello World!"),
    ("540c48656c6c6f20576f726c6421", "raw", "48656c6c6f20576f726c6421"),
    ("5587562a01", "volume_storage_l", 19551.879),
    ("56e803", "conductivity_us_cm", 1000),
    ("57ea", "temperature_c", -22),
    ("58ea", "temperature_c", -7.7),
    ("59ea", "count", -22),
    ("5aeaea", "count", -5398),
    ("5bea0234ea", "count", -365690134),
    ("5c02fbffff", "power_w", -12.78),
    ("5d02ea", "current_a", -5.63),
    ("5e9f8c", "direction_deg", 359.99),
    ("5fa00f", "precipitation_mm", 400.0),
    ("6001", "channel", 1),
    ("61ac0d", "rotational_speed_rpm", 3500),
    ("624099dfff", "speed_m_s", -2.123456),
    ("630057d0ff", "acceleration_m_s2", -3.123456),
    ("6402", "light_level", 2),
    ("6503", "settings_revision", 3),
    ("f00100", "device_type_id", 1),
    ("f100010204", "firmware", "4.2.1.0"),
    ("f2000106", "firmware", "6.1.0"),
]
# The spec's events (object 0x3A button, 0x3B command, 0x3C dimmer): bytes → the events published.
SPEC_EVENTS = [
    ("3a00", []),  # "none": nothing for this button
    ("3a01", [("button_pressed", {"button": "button", "press": "press"})]),
    ("3a02", [("button_pressed", {"button": "button", "press": "double_press"})]),
    ("3a03", [("button_pressed", {"button": "button", "press": "triple_press"})]),
    ("3a04", [("button_pressed", {"button": "button", "press": "long_press"})]),
    ("3a05", [("button_pressed", {"button": "button", "press": "long_double_press"})]),
    ("3a06", [("button_pressed", {"button": "button", "press": "long_triple_press"})]),
    ("3a80", [("button_pressed", {"button": "button", "press": "hold_press"})]),
    ("3a81", [("button_pressed", {"button": "button", "press": "hold_release"})]),
    ("3b0000", [("device_command", {"command": "command", "opcode": "off"})]),
    ("3b0001", [("device_command", {"command": "command", "opcode": "on"})]),
    ("3b0002", [("device_command", {"command": "command", "opcode": "toggle"})]),
    ("3b010305", [("device_command", {"command": "command", "opcode": "step_up", "args": "05"})]),
    ("3b010405", [("device_command", {"command": "command", "opcode": "step_down", "args": "05"})]),
    ("3c0000", []),
    ("3c0103", [("dimmer_rotated", {"dimmer": "dimmer", "direction": "left", "steps": 3})]),
    ("3c020a", [("dimmer_rotated", {"dimmer": "dimmer", "direction": "right", "steps": 10})]),
]


def events_of(result: Decoded) -> list[tuple[str, dict[str, object]]]:
    return [(e.kind, dict(e.attrs)) for e in result.events]


@pytest.mark.parametrize(("hex_objects", "name", "value"), SPEC_EXAMPLES)
def test_bthome_spec_examples(hex_objects: str, name: str, value: object) -> None:
    result = bthome.decode(ANY_MAC, bytes.fromhex("40" + hex_objects), None)
    assert isinstance(result, Decoded) and result.note is None
    if name == "packet_id":
        assert result.packet_id == value and result.values == {}
    else:
        assert result.values == {name: value}
        assert type(result.values[name]) is type(value)


@pytest.mark.parametrize(("hex_objects", "events"), SPEC_EVENTS)
def test_bthome_spec_events(hex_objects: str, events: list[tuple[str, dict[str, object]]]) -> None:
    # Followed by a window object: parsing must go on past every event object (0x3B has a length).
    result = bthome.decode(ANY_MAC, bytes.fromhex("40" + hex_objects + "2d01"), None)
    assert isinstance(result, Decoded) and result.note is None
    assert events_of(result) == events
    assert result.values == {"window": True}


UNDEFINED_EVENT_CODES = [
    "3afe",  # sent by old Shelly BLU firmware for a hold; no code of the spec (bthome-ble: no event)
    "3a07",
    "3a7f",
    "3a82",
    "3aff",
    "3c0305",  # dimmer direction 3
    "3c1201",
    "3b00ba",  # command opcode 0xba
    "3b0105ff",  # opcode 5 with an argument
]


@pytest.mark.parametrize("hex_objects", UNDEFINED_EVENT_CODES)
def test_bthome_undefined_event_codes_are_counted_not_events(hex_objects: str) -> None:
    # Issue 28: these became events ("press": "0xfe", "direction": "0x12", "opcode": "0xba") where
    # Home Assistant's parser emits nothing. Parsing goes on past them (their length is known).
    result = bthome.decode(ANY_MAC, bytes.fromhex("40" + hex_objects + "2d01"), None)
    assert isinstance(result, Decoded) and result.note is None
    assert result.events == () and result.unknown_objects == 1
    assert result.values == {"window": True}


def test_bthome_an_undefined_code_keeps_the_other_buttons_index() -> None:
    result = bthome.decode(ANY_MAC, bytes.fromhex("40" + "3afe" + "3a01"), None)
    assert isinstance(result, Decoded) and result.unknown_objects == 1
    assert events_of(result) == [("button_pressed", {"button": "button_2", "press": "press"})]


def test_bthome_mac_included_must_be_the_senders() -> None:
    other = bthome.decode(mac_bytes("A4:C1:38:8D:18:B3"), bytes.fromhex("42b2188d38c1a404138a01"), None)
    assert isinstance(other, Undecodable) and other.reason == "malformed" and "not the sender" in other.detail
    short = bthome.decode(mac_bytes("A4:C1:38:8D:18:B2"), bytes.fromhex("42b2188d"), None)
    assert isinstance(short, Undecodable) and short.reason == "malformed"


def test_bthome_knows_exactly_the_spec_object_ids() -> None:
    # An unknown id ends the parse (its length is unknown): every id of the spec must be known,
    # or a door object after it is lost. Ids from the spec's tables, 2026-04-30.
    spec_ids = {int(h[:2], 16) for h, _, _ in SPEC_EXAMPLES} | {int(h[:2], 16) for h, _ in SPEC_EVENTS}
    known = set()
    for oid in range(256):
        result = bthome.decode(ANY_MAC, bytes([0x40, oid]) + bytes(8), None)
        if not (isinstance(result, Decoded | Undecodable) and "unknown object id" in str(result)):
            known.add(oid)
    assert known == spec_ids


@pytest.mark.parametrize("middle", ["3b010305", "6503", "3c0103", "3a01"])
def test_bthome_parsing_goes_on_past_newer_objects_to_the_door(middle: str) -> None:
    # Issue 16: 0x3B and 0x65 were unknown, so the door object after them was lost.
    result = bthome.decode(ANY_MAC, bytes.fromhex("40" + "0161" + middle + "1a01"), None)
    assert isinstance(result, Decoded) and result.note is None
    assert result.values["door"] is True and result.values["battery_pct"] == 97


def test_bthome_multi_button_remote_keeps_the_button_index() -> None:
    # A 4-button remote sends one 0x3A per button, in order; 0x00 = nothing for that button.
    result = bthome.decode(ANY_MAC, bytes.fromhex("40" + "3a00" + "3a01" + "3a00" + "3a04"), None)
    assert isinstance(result, Decoded)
    assert events_of(result) == [
        ("button_pressed", {"button": "button_2", "press": "press"}),
        ("button_pressed", {"button": "button_4", "press": "long_press"}),
    ]
    first = bthome.decode(ANY_MAC, bytes.fromhex("40" + "3a02" + "3a00"), None)
    assert isinstance(first, Decoded)
    assert events_of(first) == [("button_pressed", {"button": "button_1", "press": "double_press"})]


def test_bthome_dimmer_is_an_event_not_a_number() -> None:
    # Issue 16: 403c0103 was published as dimmer = 769.
    result = bthome.decode(ANY_MAC, bytes.fromhex("403c0103"), None)
    assert isinstance(result, Decoded)
    assert result.values == {}
    assert events_of(result) == [("dimmer_rotated", {"dimmer": "dimmer", "direction": "left", "steps": 3})]


def test_bthome_truncated_variable_objects_keep_what_came_before() -> None:
    for tail in ("3b", "3b02", "3b0203", "53", "5305aa"):
        result = bthome.decode(ANY_MAC, bytes.fromhex("40" + "2d01" + tail), None)
        assert isinstance(result, Decoded), tail
        assert result.values == {"window": True} and result.note is not None and "truncated" in result.note


def test_mibeacon_device_reset_is_not_a_door_opening() -> None:
    # Object 0x1019 value 3 = device reset (a battery change): nothing about the door.
    key = bytes.fromhex("017e52d2684779298709b117c0a75a7b")
    mac = mac_bytes("E4:AA:EC:81:21:AE")
    data = mibeacon.encode(mac, 0x098B, 7, [(0x1019, b"\x03"), (0x4803, b"\x64")], key=key, ext_counter=1)
    result = mibeacon.decode(mac, data, key)
    assert isinstance(result, Decoded)
    assert result.values == {"battery_pct": 100}
    assert result.events == (DeviceEvent("sensor_reset", {"reported_by": "device"}),)
    for code, opening, left_open in ((0, True, False), (1, False, False), (2, True, True)):
        data = mibeacon.encode(mac, 0x098B, 8 + code, [(0x1019, bytes([code]))], key=key)
        decoded = mibeacon.decode(mac, data, key)
        assert isinstance(decoded, Decoded)
        assert decoded.values == {"opening": opening, "door_left_open": left_open} and decoded.events == ()


def test_mibeacon_forcibly_removed_is_tamper_only_when_set() -> None:
    mac = mac_bytes("E4:AA:EC:81:21:AE")
    for flag, values in ((b"\x01", {"tamper": True}), (b"\x00", {})):
        result = mibeacon.decode(mac, mibeacon.encode(mac, 0x098B, 1, [(0x4A0F, flag)]), None)
        assert isinstance(result, Decoded) and result.values == values


def test_bthome_button_press_and_repeated_objects() -> None:
    result = bthome.decode(ANY_MAC, bytes.fromhex("40" + "2d01" + "3a01"), None)
    assert isinstance(result, Decoded)
    assert events_of(result) == [("button_pressed", {"button": "button", "press": "press"})]
    twice = bthome.decode(ANY_MAC, bytes.fromhex("40" + "451101" + "451201"), None)
    assert isinstance(twice, Decoded) and twice.values == {"temperature_c": 27.3, "temperature_c_2": 27.4}


def test_bthome_unknown_object_keeps_what_came_before() -> None:
    result = bthome.decode(ANY_MAC, bytes.fromhex("40" + "2d01" + "e5" + "0102"), None)
    assert isinstance(result, Decoded)
    assert result.values == {"window": True} and result.note == "unknown object id 0xe5"


def test_wrong_and_missing_keys_are_named_not_raised() -> None:
    mac = mac_bytes("54:48:E6:8F:80:A5")
    data = bytes.fromhex("41a47266c95f730011223378237214")
    wrong = bthome.decode(mac, data, bytes(16))
    assert isinstance(wrong, Undecodable) and wrong.reason == "wrong_key" and "wrong bindkey" in wrong.detail
    missing = bthome.decode(mac, data, None)
    assert isinstance(missing, Undecodable) and missing.reason == "no_key"
    xiaomi = mibeacon.decode(
        mac_bytes("E4:AA:EC:81:21:AE"),
        bytes.fromhex("58588b09a3ae2181ecaae40e2c553c040000d28a500c"),
        bytes(16),
    )
    assert isinstance(xiaomi, Undecodable) and xiaomi.reason == "wrong_key"


def test_mibeacon_from_another_sender_is_refused() -> None:
    result = mibeacon.decode(ANY_MAC, bytes.fromhex("5040d60301d6030a38c1a419100100"), None)
    assert isinstance(result, Undecodable) and result.reason == "malformed" and "MAC" in result.detail


def test_our_encoders_round_trip_through_the_decoders() -> None:
    key = bytes(range(16))
    mac = mac_bytes("11:22:33:44:55:66")
    data = bthome.encode([(0x00, 9), (0x01, 88), (0x2D, 1)], mac=mac, key=key, counter=77)
    result = bthome.decode(mac, data, key)
    assert isinstance(result, Decoded)
    assert (result.values, result.packet_id, result.counter) == ({"battery_pct": 88, "window": True}, 9, 77)
    data = mibeacon.encode(mac, 0x098B, 5, [(0x1019, b"\x01"), (0x4803, b"\x40")], key=key, ext_counter=3)
    result = mibeacon.decode(mac, data, key)
    assert isinstance(result, Decoded)
    assert result.values == {"opening": False, "door_left_open": False, "battery_pct": 64}
    assert result.counter == 3 << 8 | 5
    data = qingping.encode(mac, 0x04, [(0x04, b"\x02"), (0x02, b"\x50")])
    assert qingping.decode(mac, data).values == {"opening": True, "door_left_open": True, "battery_pct": 80}  # type: ignore[union-attr]


def test_dispatch_by_service_uuid() -> None:
    mac = mac_bytes("58:2D:34:40:3A:4D")
    advert = Advert("58:2D:34:40:3A:4D", -50, {QINGPING_UUID: bytes.fromhex("c8044d3a40342d580401010f01ef")})
    assert isinstance(decode_advert(advert, mac), Decoded)
    assert (
        decode_advert(
            Advert("58:2D:34:40:3A:4D", -50, {"0000180f" + "-0000-1000-8000-00805f9b34fb": b"\x01"}), mac
        )
        is None
    )


@settings(max_examples=400, deadline=None)
@given(
    uuid=st.sampled_from([BTHOME_UUID, MIBEACON_UUID, QINGPING_UUID]),
    data=st.binary(max_size=40),
    key=st.one_of(st.none(), st.binary(min_size=16, max_size=16)),
)
def test_random_payloads_never_raise(uuid: str, data: bytes, key: bytes | None) -> None:
    result = decode_advert(Advert("A4:C1:38:00:00:01", -60, {uuid: data}), ANY_MAC, key)
    assert isinstance(result, Decoded | Undecodable)


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=30), which=st.integers(min_value=0, max_value=len(GOLDEN) - 1))
def test_truncated_real_adverts_never_raise(cut: int, which: int) -> None:
    _, decode, address, payload, key, _, _ = GOLDEN[which]
    data = bytes.fromhex(payload)[:cut]
    result = decode(mac_bytes(address), data, bytes.fromhex(key) if key else None)
    assert isinstance(result, Decoded | Undecodable)
