"""Qingping's own advert format (service UUID 0xFDCD), e.g. the CGH1 door/window sensor.

Layout: frame control (1; bit 6 = event packet), device type (1), MAC reversed (6), then TLVs
`id (1), length (1), data`. Door (id 0x04): 0 open, 1 closed, 2 open for too long.
"""

from __future__ import annotations

from drivers.ble.adverts import Decoded, Undecodable
from gateway.core.records import Value

FORMAT = "qingping"
MODELS = {0x01: "CGG1", 0x04: "CGH1", 0x07: "CGG1", 0x09: "CGP1W", 0x0C: "CGD1", 0x12: "CGPR1"}


def decode(mac: bytes, data: bytes, key: bytes | None = None) -> Decoded | Undecodable:
    """Decode Qingping service data sent by `mac` (this format is not encrypted). Never raises."""
    if len(data) < 8:
        return Undecodable(FORMAT, "malformed", f"frame too short ({len(data)} bytes)")
    if data[2:8] != mac[::-1]:
        return Undecodable(FORMAT, "malformed", "MAC in the frame is not the sender's")
    values: dict[str, Value] = {}
    packet_id: int | None = None
    note: str | None = None
    pos, end = 8, len(data)
    while pos + 2 <= end:
        tid, size = data[pos], data[pos + 1]
        item = data[pos + 2 : pos + 2 + size]
        pos += 2 + size
        if len(item) < size:
            note = f"truncated item 0x{tid:02x}"
            break
        if tid == 0x04 and size == 1:
            values["opening"] = item[0] in (0, 2)
            values["door_left_open"] = item[0] == 2
        elif tid == 0x01 and size == 4:
            values["temperature_c"] = int.from_bytes(item[:2], "little", signed=True) / 10
            values["humidity_pct"] = int.from_bytes(item[2:], "little") / 10
        elif tid == 0x02 and size == 1:
            values["battery_pct"] = 100 if item[0] == 0xFF else item[0]
        elif tid == 0x0F and size == 1:
            packet_id = item[0]
        elif tid == 0x11 and size == 1:
            values["light"] = item[0] != 0
    if pos < end and note is None:
        note = "trailing byte after the last item"
    if note and not values:
        return Undecodable(FORMAT, "malformed", note)
    return Decoded(FORMAT, values, False, packet_id, None, MODELS.get(data[1]), (), note)


def encode(mac: bytes, device_type: int, items: list[tuple[int, bytes]], *, event: bool = True) -> bytes:
    """Qingping service data with `items` (id, data): for the simulator and the tests."""
    head = bytes([0x88 | (0x40 if event else 0), device_type]) + mac[::-1]
    return head + b"".join(bytes([tid, len(d)]) + d for tid, d in items)
