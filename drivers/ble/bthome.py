"""BTHome v2 (service UUID 0xFCD2), plain and AES-CCM encrypted. Spec: https://bthome.io/format/

Layout: one device-information byte (bit 0 encrypted, bit 2 trigger-based, bits 5-7 version = 2),
then objects `id, value...` with little-endian fixed-size values in a known order. An object id we
do not know ends the parse (its length is unknown), keeping what came before: the spec's own rule.

Encrypted: info byte, ciphertext, 4-byte counter, 4-byte tag; nonce = sender address + UUID (d2 fc)
+ info byte + counter.
"""

from __future__ import annotations

import struct

from drivers.ble import ccm
from drivers.ble.adverts import BTHOME_UUID16, Decoded, Undecodable
from gateway.core.records import Value

FORMAT = "bthome"
_UUID_LE = BTHOME_UUID16.to_bytes(2, "little")  # part of the nonce

# id: (name, length, signed, factor). Binary objects (length 1, factor None) become booleans.
# Names carry their unit. `opening`, `door`, `window` and `garage_door` are door states.
_OBJECTS: dict[int, tuple[str, int, bool, float | None]] = {
    0x01: ("battery_pct", 1, False, 1),
    0x02: ("temperature_c", 2, True, 0.01),
    0x03: ("humidity_pct", 2, False, 0.01),
    0x04: ("pressure_hpa", 3, False, 0.01),
    0x05: ("illuminance_lux", 3, False, 0.01),
    0x06: ("mass_kg", 2, False, 0.01),
    0x07: ("mass_lb", 2, False, 0.01),
    0x08: ("dew_point_c", 2, True, 0.01),
    0x09: ("count", 1, False, 1),
    0x0A: ("energy_kwh", 3, False, 0.001),
    0x0B: ("power_w", 3, False, 0.01),
    0x0C: ("voltage_v", 2, False, 0.001),
    0x0D: ("pm25_ugm3", 2, False, 1),
    0x0E: ("pm10_ugm3", 2, False, 1),
    0x0F: ("generic", 1, False, None),
    0x10: ("power_on", 1, False, None),
    0x11: ("opening", 1, False, None),
    0x12: ("co2_ppm", 2, False, 1),
    0x13: ("tvoc_ugm3", 2, False, 1),
    0x14: ("moisture_pct", 2, False, 0.01),
    0x15: ("battery_low", 1, False, None),
    0x16: ("battery_charging", 1, False, None),
    0x17: ("carbon_monoxide", 1, False, None),
    0x18: ("cold", 1, False, None),
    0x19: ("connectivity", 1, False, None),
    0x1A: ("door", 1, False, None),
    0x1B: ("garage_door", 1, False, None),
    0x1C: ("gas", 1, False, None),
    0x1D: ("heat", 1, False, None),
    0x1E: ("light", 1, False, None),
    0x1F: ("unlocked", 1, False, None),
    0x20: ("wet", 1, False, None),
    0x21: ("motion", 1, False, None),
    0x22: ("moving", 1, False, None),
    0x23: ("occupancy", 1, False, None),
    0x24: ("plugged", 1, False, None),
    0x25: ("presence", 1, False, None),
    0x26: ("problem", 1, False, None),
    0x27: ("running", 1, False, None),
    0x28: ("unsafe", 1, False, None),
    0x29: ("smoke", 1, False, None),
    0x2A: ("sound", 1, False, None),
    0x2B: ("tamper", 1, False, None),
    0x2C: ("vibration", 1, False, None),
    0x2D: ("window", 1, False, None),
    0x2E: ("humidity_pct", 1, False, 1),
    0x2F: ("moisture_pct", 1, False, 1),
    0x3A: ("button", 1, False, 1),
    0x3C: ("dimmer", 2, False, 1),
    0x3D: ("count", 2, False, 1),
    0x3E: ("count", 4, False, 1),
    0x3F: ("rotation_deg", 2, True, 0.1),
    0x40: ("distance_mm", 2, False, 1),
    0x41: ("distance_m", 2, False, 0.1),
    0x42: ("duration_s", 3, False, 0.001),
    0x43: ("current_a", 2, False, 0.001),
    0x44: ("speed_m_s", 2, False, 0.01),
    0x45: ("temperature_c", 2, True, 0.1),
    0x46: ("uv_index", 1, False, 0.1),
    0x47: ("volume_l", 2, False, 0.1),
    0x48: ("volume_ml", 2, False, 1),
    0x49: ("flow_m3_h", 2, False, 0.001),
    0x4A: ("voltage_v", 2, False, 0.1),
    0x4B: ("gas_m3", 3, False, 0.001),
    0x4C: ("gas_m3", 4, False, 0.001),
    0x4D: ("energy_kwh", 4, False, 0.001),
    0x4E: ("volume_l", 4, False, 0.001),
    0x4F: ("water_l", 4, False, 0.001),
    0x50: ("timestamp_s", 4, False, 1),
    0x51: ("acceleration_m_s2", 2, False, 0.001),
    0x52: ("gyroscope_deg_s", 2, False, 0.001),
    0x55: ("volume_storage_l", 4, False, 0.001),
    0x56: ("conductivity_us_cm", 2, False, 1),
    0x57: ("temperature_c", 1, True, 1),
    0x58: ("temperature_c", 1, True, 0.35),
    0x59: ("count", 1, True, 1),
    0x5A: ("count", 2, True, 1),
    0x5B: ("count", 4, True, 1),
    0x5C: ("power_w", 4, True, 0.01),
    0x5D: ("current_a", 2, True, 0.001),
    0x5E: ("direction_deg", 2, False, 0.01),
    0x5F: ("precipitation_mm", 2, False, 0.1),
    0x60: ("channel", 1, False, 1),
    0x61: ("rotational_speed_rpm", 2, False, 1),
    0x62: ("speed_m_s", 4, True, 0.000001),
    0x63: ("acceleration_m_s2", 4, True, 0.000001),
    0x64: ("light_level", 1, False, 1),
    0xF0: ("device_type_id", 2, False, 1),
    0xF1: ("firmware", 4, False, 1),
    0xF2: ("firmware", 3, False, 1),
}
_PACKET_ID = 0x00
_TEXT, _RAW = 0x53, 0x54  # variable length: one length byte, then the bytes

_BUTTON_EVENTS = {
    0x01: "press",
    0x02: "double_press",
    0x03: "triple_press",
    0x04: "long_press",
    0x05: "long_double_press",
    0x06: "long_triple_press",
    0x80: "hold",
    0xFE: "hold",
}


def _number(raw: bytes, signed: bool, factor: float) -> float | int:
    value = int.from_bytes(raw, "little", signed=signed)
    if factor == 1:
        return value
    # Round away the binary noise of the factor (0.01 * 2506 = 25.060000000000002).
    return round(value * factor, 6)


def parse_objects(payload: bytes) -> tuple[dict[str, Value], int | None, tuple[str, ...], str | None]:
    """(values, packet id, button presses, problem) of a decrypted object list.

    A repeated object (two buttons, two temperatures) gets `_2`, `_3`... appended, as BTHome's
    multi-channel convention intends. `problem` is set when the list is truncated or malformed.
    """
    values: dict[str, Value] = {}
    presses: list[str] = []
    packet_id: int | None = None
    pos, end = 0, len(payload)
    while pos < end:
        oid = payload[pos]
        pos += 1
        if oid == _PACKET_ID:
            if pos >= end:
                return values, packet_id, tuple(presses), "truncated packet id"
            packet_id = payload[pos]
            pos += 1
            continue
        if oid in (_TEXT, _RAW):
            if pos >= end or pos + 1 + payload[pos] > end:
                return values, packet_id, tuple(presses), f"truncated object 0x{oid:02x}"
            size = payload[pos]
            data = payload[pos + 1 : pos + 1 + size]
            pos += 1 + size
            _put(
                values,
                "text" if oid == _TEXT else "raw",
                data.decode("utf-8", "replace") if oid == _TEXT else data.hex(),
            )
            continue
        spec = _OBJECTS.get(oid)
        if spec is None:
            # Unknown length: the rest cannot be parsed. Keep what we have (spec behaviour).
            return values, packet_id, tuple(presses), f"unknown object id 0x{oid:02x}"
        name, size, signed, factor = spec
        if pos + size > end:
            return values, packet_id, tuple(presses), f"truncated object 0x{oid:02x}"
        raw = payload[pos : pos + size]
        pos += size
        if factor is None:
            _put(values, name, raw[0] != 0)
        elif oid == 0x3A:
            if raw[0]:
                presses.append(_BUTTON_EVENTS.get(raw[0], f"button_0x{raw[0]:02x}"))
        else:
            _put(values, name, _number(raw, signed, factor))
    return values, packet_id, tuple(presses), None


def _put(values: dict[str, Value], name: str, value: Value) -> None:
    key, n = name, 1
    while key in values:
        n += 1
        key = f"{name}_{n}"
    values[key] = value


def decode(mac: bytes, data: bytes, key: bytes | None) -> Decoded | Undecodable:
    """Decode BTHome v2 service data sent by `mac`. Never raises."""
    if not data:
        return Undecodable(FORMAT, "malformed", "empty service data")
    info = data[0]
    version = info >> 5
    encrypted = bool(info & 0x01)
    if version != 2:
        return Undecodable(FORMAT, "unsupported", f"BTHome version {version} (only v2 is decoded)", encrypted)
    counter: int | None = None
    if encrypted:
        if len(data) < 1 + 1 + 4 + 4:
            return Undecodable(FORMAT, "malformed", f"encrypted advert too short ({len(data)} bytes)", True)
        if key is None:
            return Undecodable(FORMAT, "no_key", "advert is encrypted and no bindkey is configured", True)
        counter_raw = data[-8:-4]
        nonce = mac + _UUID_LE + data[:1] + counter_raw
        plain = ccm.decrypt(key, nonce, data[1:-8], data[-4:])
        if plain is None:
            return Undecodable(FORMAT, "wrong_key", "cannot decrypt: wrong bindkey?", True)
        counter = int.from_bytes(counter_raw, "little")
        payload = plain
    else:
        payload = data[1:]
    values, packet_id, presses, problem = parse_objects(payload)
    if problem and not values and not presses and packet_id is None:
        return Undecodable(FORMAT, "malformed", problem, encrypted)
    return Decoded(FORMAT, values, encrypted, packet_id, counter, None, presses, problem)


def encode(
    objects: list[tuple[int, int]],
    *,
    mac: bytes | None = None,
    key: bytes | None = None,
    counter: int = 0,
    trigger: bool = False,
) -> bytes:
    """Service data for (object id, raw integer) pairs; encrypted when `key` is given.

    The inverse of `decode`, for the demo's simulated sensors, the benchmark and the tests.
    """
    body = bytearray()
    for oid, raw in objects:
        size = 1 if oid == _PACKET_ID else _OBJECTS[oid][1]
        signed = oid != _PACKET_ID and _OBJECTS[oid][2]
        body.append(oid)
        body += raw.to_bytes(size, "little", signed=signed)
    info = 0x40 | (0x04 if trigger else 0) | (0x01 if key else 0)
    if key is None:
        return bytes([info]) + bytes(body)
    if mac is None:
        raise ValueError("encrypting needs the sender's address")
    counter_raw = struct.pack("<I", counter)
    nonce = mac + _UUID_LE + bytes([info]) + counter_raw
    ciphertext, tag = ccm.encrypt(key, nonce, bytes(body))
    return bytes([info]) + ciphertext + counter_raw + tag
