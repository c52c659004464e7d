"""Xiaomi MiBeacon (service UUID 0xFE95), v2-v5 frames, v4/v5 AES-CCM encryption.

Frame: frame control (2 bytes LE: bit 3 encrypted, 4 MAC included, 5 capability included,
6 objects included, bits 12-15 version), product id (2), frame counter (1), [MAC reversed (6)],
[capability (1) + IO capability (2) if capability bit 5], objects `type (2 LE), length (1), data`.
Encrypted v4/v5: objects are ciphertext followed by a 3-byte extended counter and a 4-byte tag;
nonce = MAC reversed + product id + frame counter + extended counter, associated data 0x11.
"""

from __future__ import annotations

from drivers.ble import ccm
from drivers.ble.adverts import Decoded, DeviceEvent, Undecodable
from gateway.core.records import Value

FORMAT = "mibeacon"
_AAD = b"\x11"

MODELS = {
    0x098B: "MCCGQ02HL",  # Xiaomi Door/Window Sensor 2
    0x03D6: "CGH1",  # Qingping Door/Window Sensor (MiBeacon firmware)
    0x0A8D: "RTCGQ02LM",
    0x055B: "LYWSD03MMC",
}


def _door_state(code: int, values: dict[str, Value], events: list[DeviceEvent]) -> None:
    # 0x1019: 0 open, 1 closed, 2 open for longer than the device's timeout, 3 device reset (a
    # battery change): the reset says nothing about the door, so it is an event, not a state.
    if code in (0, 2):
        values["opening"] = True
        values["door_left_open"] = code == 2
    elif code == 1:
        values["opening"] = False
        values["door_left_open"] = False
    elif code == 3:
        events.append(DeviceEvent("sensor_reset", {"reported_by": "device"}))


def _objects(payload: bytes) -> tuple[dict[str, Value], tuple[DeviceEvent, ...], str | None]:
    """(values, events, problem) of an object list. 0x4A0F (forcibly removed) is only ever sent as
    1: the tracker ends the tamper episode on any closed report, as xiaomi-ble does."""
    values: dict[str, Value] = {}
    events: list[DeviceEvent] = []
    pos, end = 0, len(payload)
    while pos + 3 <= end:
        oid = payload[pos] | payload[pos + 1] << 8
        size = payload[pos + 2]
        obj = payload[pos + 3 : pos + 3 + size]
        pos += 3 + size
        if len(obj) < size or size == 0:
            return values, tuple(events), f"truncated object 0x{oid:04x}"
        if oid == 0x1019:
            _door_state(obj[0], values, events)
        elif oid in (0x4A12, 0x4804):  # opening event / state: 1 open, 2 closed
            if obj[0] in (1, 2):
                values["opening"] = obj[0] == 1
                if obj[0] == 2:
                    values["door_left_open"] = False
        elif oid == 0x4A1A:  # door not closed (left open)
            if obj[0] == 1:
                values["opening"] = True
                values["door_left_open"] = True
        elif oid == 0x4A0F:  # forcibly opened / removed (only ever 1)
            if obj[0] == 1:
                values["tamper"] = True
        elif oid in (0x100A, 0x4803):
            values["battery_pct"] = obj[0]
        elif oid == 0x1004 and size == 2:
            values["temperature_c"] = int.from_bytes(obj, "little", signed=True) / 10
        elif oid == 0x1006 and size == 2:
            values["humidity_pct"] = int.from_bytes(obj, "little") / 10
        elif oid == 0x100D and size == 4:
            values["temperature_c"] = int.from_bytes(obj[:2], "little", signed=True) / 10
            values["humidity_pct"] = int.from_bytes(obj[2:], "little") / 10
        elif oid == 0x1018:
            values["light"] = obj[0] != 0
        # Other object types are valid but not ours to interpret: skipped by length.
    if pos != end:
        return values, tuple(events), "trailing bytes after the last object"
    return values, tuple(events), None


def decode(mac: bytes, data: bytes, key: bytes | None) -> Decoded | Undecodable:
    """Decode MiBeacon service data sent by `mac`. Never raises."""
    if len(data) < 5:
        return Undecodable(FORMAT, "malformed", f"frame too short ({len(data)} bytes)")
    control = data[0] | data[1] << 8
    version = control >> 12
    encrypted = bool(control & 0x08)
    product = data[2] | data[3] << 8
    frame_counter = data[4]
    model = MODELS.get(product)
    pos = 5
    if control & 0x10:
        if len(data) < pos + 6:
            return Undecodable(FORMAT, "malformed", "frame ends inside the MAC field", encrypted)
        if data[pos : pos + 6] != mac[::-1]:
            return Undecodable(FORMAT, "malformed", "MAC in the frame is not the sender's", encrypted)
        pos += 6
    if control & 0x20:
        if len(data) < pos + 1:
            return Undecodable(FORMAT, "malformed", "frame ends inside the capability field", encrypted)
        pos += 3 if data[pos] & 0x20 else 1
    if not control & 0x40:
        return Decoded(FORMAT, {}, encrypted, frame_counter, None, model)
    if not encrypted:
        values, events, note = _objects(data[pos:])
        if note and not values and not events:
            return Undecodable(FORMAT, "malformed", note)
        return Decoded(FORMAT, values, False, frame_counter, None, model, events, note)
    if version < 4:
        return Undecodable(FORMAT, "unsupported", f"MiBeacon v{version} legacy encryption", True)
    if len(data) < pos + 1 + 3 + 4:
        return Undecodable(FORMAT, "malformed", "encrypted frame too short", True)
    if key is None:
        return Undecodable(FORMAT, "no_key", "advert is encrypted and no bindkey is configured", True, model)
    ext = data[-7:-4]
    nonce = mac[::-1] + data[2:5] + ext
    plain = ccm.decrypt(key, nonce, data[pos:-7], data[-4:], _AAD)
    if plain is None:
        return Undecodable(FORMAT, "wrong_key", "cannot decrypt: wrong bindkey?", True, model)
    values, events, note = _objects(plain)
    counter = int.from_bytes(ext, "little") << 8 | frame_counter
    return Decoded(FORMAT, values, True, frame_counter, counter, model, events, note)


def encode(
    mac: bytes,
    product: int,
    frame_counter: int,
    objects: list[tuple[int, bytes]],
    *,
    key: bytes | None = None,
    ext_counter: int = 0,
    include_mac: bool = True,
) -> bytes:
    """MiBeacon v5 service data carrying `objects` (type, data); encrypted when `key` is given."""
    body = b"".join(oid.to_bytes(2, "little") + bytes([len(d)]) + d for oid, d in objects)
    control = 0x5000 | 0x40 | (0x10 if include_mac else 0) | (0x08 if key else 0)
    head = control.to_bytes(2, "little") + product.to_bytes(2, "little") + bytes([frame_counter & 0xFF])
    if include_mac:
        head += mac[::-1]
    if key is None:
        return head + body
    ext = ext_counter.to_bytes(3, "little")
    nonce = mac[::-1] + head[2:5] + ext
    ciphertext, tag = ccm.encrypt(key, nonce, body, _AAD)
    return head + ciphertext + ext + tag
