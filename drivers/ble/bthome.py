"""BTHome v2 (service UUID 0xFCD2), plain and AES-CCM encrypted. Spec: https://bthome.io/format/

Layout: one device-information byte (bit 0 encrypted, bit 2 trigger-based, bits 5-7 version = 2),
then objects `id, value...` with little-endian fixed-size values in a known order. An object id we
do not know ends the parse (its length is unknown), keeping what came before: the spec's own rule,
so the table below holds every object id of the spec (checked against bthome.io/format, 2026-04).

Binary sensors are published with the spec's meaning of 1 (0x28 `safe`: 1 = safe). Events
(0x3A button, 0x3B command, 0x3C dimmer) become `DeviceEvent`s; a device with several buttons
sends one 0x3A per button in a fixed order (0x00 = nothing for this one), so their position is
the button's index: `button_1`, `button_2`... (a lone one is `button`). An event code the spec
does not define (a button code outside its table such as 0xFE, a dimmer direction other than
left/right, a command opcode above step_down) is never an event: it is counted in
`Decoded.unknown_objects` (the tracker's `unknown_object`), as Home Assistant's parser
(bthome-ble) emits nothing for it.

Info byte bit 1 (MAC included): the sender's address follows, least significant byte first; it
must be the advertising address (as MiBeacon's), and the objects start after it.

Encrypted: info byte, [MAC], ciphertext, 4-byte counter, 4-byte tag; nonce = sender address +
UUID (d2 fc) + info byte + counter.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from drivers.ble import ccm
from drivers.ble.adverts import BTHOME_UUID16, Decoded, DeviceEvent, Undecodable
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
    0x28: ("safe", 1, False, None),  # 1 = safe, 0 = unsafe (the spec's meaning)
    0x29: ("smoke", 1, False, None),
    0x2A: ("sound", 1, False, None),
    0x2B: ("tamper", 1, False, None),
    0x2C: ("vibration", 1, False, None),
    0x2D: ("window", 1, False, None),
    0x2E: ("humidity_pct", 1, False, 1),
    0x2F: ("moisture_pct", 1, False, 1),
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
    0x65: ("settings_revision", 1, False, 1),
    0xF0: ("device_type_id", 2, False, 1),
}
_PACKET_ID = 0x00
_TEXT, _RAW = 0x53, 0x54  # variable length: one length byte, then the bytes
_FIRMWARE = {0xF1: 4, 0xF2: 3}  # version bytes, least significant first: F2 00 01 06 → "6.1.0"

# Events: (name, value bytes). 0x3B (command) has a variable length: a byte whose low 5 bits
# give the argument length, then the opcode, then the arguments.
_BUTTON, _COMMAND, _DIMMER = 0x3A, 0x3B, 0x3C
_EVENT_SIZE = {_BUTTON: 1, _DIMMER: 2}
_EVENT_NAME = {_BUTTON: "button", _COMMAND: "command", _DIMMER: "dimmer"}
_BUTTON_EVENTS = {
    0x01: "press",
    0x02: "double_press",
    0x03: "triple_press",
    0x04: "long_press",
    0x05: "long_double_press",
    0x06: "long_triple_press",
    0x80: "hold_press",
    0x81: "hold_release",
}
_DIMMER_DIRECTIONS = {0x01: "left", 0x02: "right"}
_COMMAND_OPCODES = {0x00: "off", 0x01: "on", 0x02: "toggle", 0x03: "step_up", 0x04: "step_down"}


def _number(raw: bytes, signed: bool, factor: float) -> float | int:
    value = int.from_bytes(raw, "little", signed=signed)
    if factor == 1:
        return value
    # Round away the binary noise of the factor (0.01 * 2506 = 25.060000000000002).
    return round(value * factor, 6)


@dataclass(slots=True)
class Objects:
    """What a decrypted object list holds. `problem` is set when the list is truncated, malformed
    or stops at an unknown object id (what came before it is kept); `unknown_codes` counts event
    objects whose code the spec does not define (dropped, never events)."""

    values: dict[str, Value] = field(default_factory=dict)
    packet_id: int | None = None
    events: tuple[DeviceEvent, ...] = ()
    problem: str | None = None
    unknown_codes: int = 0


def parse_objects(payload: bytes) -> Objects:
    """The objects of a decrypted object list.

    A repeated measurement (two temperatures) gets `_2`, `_3`... appended, as BTHome's
    multi-channel convention intends.
    """
    values: dict[str, Value] = {}
    raw_events: list[tuple[int, bytes]] = []
    packet_id: int | None = None
    problem: str | None = None
    pos, end = 0, len(payload)
    while pos < end:
        oid = payload[pos]
        pos += 1
        if oid == _PACKET_ID:
            if pos >= end:
                problem = "truncated packet id"
                break
            packet_id = payload[pos]
            pos += 1
            continue
        size = _size(oid, payload, pos)
        if size is None:
            # Unknown length: the rest cannot be parsed. Keep what we have (spec behaviour).
            problem = f"unknown object id 0x{oid:02x}"
            break
        if pos + size > end:
            problem = f"truncated object 0x{oid:02x}"
            break
        raw = payload[pos : pos + size]
        pos += size
        if oid in _EVENT_NAME:
            raw_events.append((oid, raw))
        elif oid == _TEXT:
            _put(values, "text", raw[1:].decode("utf-8", "replace"))
        elif oid == _RAW:
            _put(values, "raw", raw[1:].hex())
        elif oid in _FIRMWARE:
            _put(values, "firmware", ".".join(str(b) for b in reversed(raw)))
        else:
            name, _, signed, factor = _OBJECTS[oid]
            _put(values, name, raw[0] != 0 if factor is None else _number(raw, signed, factor))
    events, unknown = _events(raw_events)
    return Objects(values, packet_id, events, problem, unknown)


def _size(oid: int, payload: bytes, pos: int) -> int | None:
    """Bytes after the object id, or None for an id the spec does not define (yet)."""
    spec = _OBJECTS.get(oid)
    if spec is not None:
        return spec[1]
    if oid in _EVENT_SIZE:
        return _EVENT_SIZE[oid]
    if oid in _FIRMWARE:
        return _FIRMWARE[oid]
    if oid in (_TEXT, _RAW):  # length byte + that many bytes (no length byte: truncated)
        return 1 + payload[pos] if pos < len(payload) else 1
    if oid == _COMMAND:  # length byte (low 5 bits = argument bytes) + opcode + arguments
        return 2 + (payload[pos] & 0x1F) if pos < len(payload) else 2
    return None


def _events(raw_events: list[tuple[int, bytes]]) -> tuple[tuple[DeviceEvent, ...], int]:
    """(device events in order, undefined codes); the n-th object of a type is that type's
    channel n, whether or not its code is defined (a remote's button order does not change)."""
    totals: dict[int, int] = {}
    for oid, _ in raw_events:
        totals[oid] = totals.get(oid, 0) + 1
    seen: dict[int, int] = {}
    out: list[DeviceEvent] = []
    unknown = 0
    for oid, raw in raw_events:
        index = seen[oid] = seen.get(oid, 0) + 1
        channel = _EVENT_NAME[oid] if totals[oid] == 1 else f"{_EVENT_NAME[oid]}_{index}"
        event = _event(oid, channel, raw)
        if event is _UNDEFINED:
            unknown += 1
        elif event is not None:
            out.append(event)
    return tuple(out), unknown


_UNDEFINED = DeviceEvent("undefined")  # marker: a code the spec does not define


def _event(oid: int, channel: str, raw: bytes) -> DeviceEvent | None:
    """One event object; None for the spec's "no event for this channel" (0x00 of a button or a
    dimmer), `_UNDEFINED` for a code outside the spec's tables."""
    if oid == _BUTTON:
        if raw[0] == 0:
            return None
        press = _BUTTON_EVENTS.get(raw[0])
        if press is None:
            return _UNDEFINED
        return DeviceEvent("button_pressed", {"button": channel, "press": press})
    if oid == _DIMMER:
        if raw[0] == 0:
            return None
        direction = _DIMMER_DIRECTIONS.get(raw[0])
        if direction is None:
            return _UNDEFINED
        return DeviceEvent("dimmer_rotated", {"dimmer": channel, "direction": direction, "steps": raw[1]})
    # A command (a remote's on/off/toggle/step): the arguments are opcode- and maker-specific.
    opcode = _COMMAND_OPCODES.get(raw[1])
    if opcode is None:
        return _UNDEFINED
    attrs: dict[str, Value] = {"command": channel, "opcode": opcode}
    if raw[2:]:
        attrs["args"] = raw[2:].hex()
    return DeviceEvent("device_command", attrs)


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
    start = 1
    if info & 0x02:  # MAC included, least significant byte first
        if len(data) < 7:
            return Undecodable(FORMAT, "malformed", "advert ends inside the MAC field", encrypted)
        if data[1:7] != mac[::-1]:
            return Undecodable(FORMAT, "malformed", "MAC in the advert is not the sender's", encrypted)
        start = 7
    counter: int | None = None
    if encrypted:
        if len(data) < start + 1 + 4 + 4:
            return Undecodable(FORMAT, "malformed", f"encrypted advert too short ({len(data)} bytes)", True)
        if key is None:
            return Undecodable(FORMAT, "no_key", "advert is encrypted and no bindkey is configured", True)
        counter_raw = data[-8:-4]
        nonce = mac + _UUID_LE + data[:1] + counter_raw
        plain = ccm.decrypt(key, nonce, data[start:-8], data[-4:])
        if plain is None:
            return Undecodable(FORMAT, "wrong_key", "cannot decrypt: wrong bindkey?", True)
        counter = int.from_bytes(counter_raw, "little")
        payload = plain
    else:
        payload = data[start:]
    found = parse_objects(payload)
    if found.problem and not found.values and not found.events and found.packet_id is None:
        return Undecodable(FORMAT, "malformed", found.problem, encrypted)
    return Decoded(
        FORMAT,
        found.values,
        encrypted,
        found.packet_id,
        counter,
        None,
        found.events,
        found.problem,
        found.unknown_codes,
    )


def encode(
    objects: list[tuple[int, int]],
    *,
    mac: bytes | None = None,
    key: bytes | None = None,
    counter: int = 0,
    trigger: bool = False,
) -> bytes:
    """Service data for (object id, raw integer) pairs of fixed-size objects (measurements, binary
    sensors, 0x3A buttons, 0x3C dimmers); encrypted when `key` is given.

    The inverse of `decode`, for the demo's simulated sensors, the benchmark and the tests.
    """
    body = bytearray()
    for oid, raw in objects:
        spec = _OBJECTS.get(oid)
        size = spec[1] if spec else _EVENT_SIZE.get(oid, 1)
        signed = spec is not None and spec[2]
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
