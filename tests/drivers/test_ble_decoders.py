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


# Examples from the BTHome v2 format specification (https://bthome.io/format/): object bytes → value.
SPEC_EXAMPLES = [
    ("0161", "battery_pct", 97),
    ("02ca09", "temperature_c", 25.06),
    ("03bf13", "humidity_pct", 50.55),
    ("04138a01", "pressure_hpa", 1008.83),
    ("05138a14", "illuminance_lux", 13460.67),
    ("065e1f", "mass_kg", 80.3),
    ("0960", "count", 96),
    ("0a138a14", "energy_kwh", 1346.067),
    ("0b021b00", "power_w", 69.14),
    ("0c020c", "voltage_v", 3.074),
    ("12e204", "co2_ppm", 1250),
    ("2e23", "humidity_pct", 35),
    ("3f020c", "rotation_deg", 307.4),
    ("424e3400", "duration_s", 13.39),
    ("451101", "temperature_c", 27.3),
    ("4f87562a01", "water_l", 19551.879),
    ("1a01", "door", True),
    ("2d00", "window", False),
    ("2b01", "tamper", True),
]


@pytest.mark.parametrize(("hex_objects", "name", "value"), SPEC_EXAMPLES)
def test_bthome_spec_examples(hex_objects: str, name: str, value: object) -> None:
    result = bthome.decode(ANY_MAC, bytes.fromhex("40" + hex_objects), None)
    assert isinstance(result, Decoded)
    assert result.values == {name: value}


def test_bthome_button_press_and_repeated_objects() -> None:
    result = bthome.decode(ANY_MAC, bytes.fromhex("40" + "3a01" + "3a04" + "2d01"), None)
    assert isinstance(result, Decoded)
    assert result.presses == ("press", "long_press")
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
