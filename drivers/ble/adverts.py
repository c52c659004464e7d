"""What the radio hands us (`Advert`) and what a decoder makes of it (`Decoded` / `Undecodable`).

Decoders are pure functions of (sender address, service data bytes, bindkey): no I/O, no clock, no
state. Replay, dedup and presence live in `tracker.py`, which sees the decoded results in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.core.records import Value

BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def uuid16(short: int) -> str:
    """The 128-bit UUID string BlueZ/bleak use for a 16-bit service UUID."""
    return f"0000{short:04x}{BASE_UUID_SUFFIX}"


BTHOME_UUID16 = 0xFCD2
MIBEACON_UUID16 = 0xFE95
QINGPING_UUID16 = 0xFDCD
BTHOME_UUID = uuid16(BTHOME_UUID16)
MIBEACON_UUID = uuid16(MIBEACON_UUID16)
QINGPING_UUID = uuid16(QINGPING_UUID16)


def mac_bytes(address: str) -> bytes:
    """`"54:48:E6:8F:80:A5"` → 6 bytes in the order written. Raises ValueError for anything else."""
    raw = bytes.fromhex(address.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"not a Bluetooth address: {address!r}")
    return raw


@dataclass(frozen=True, slots=True)
class Advert:
    """One advertisement as received: sender, signal strength and the data sections we decode.

    `ts` is the receiver's monotonic time in seconds (for presence and the watchdog).
    """

    address: str
    rssi: int
    service_data: dict[str, bytes] = field(default_factory=dict)
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    name: str | None = None
    ts: float = 0.0


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """Something the device reports happening, published as an Event of `kind`: a button press
    (`button_pressed`), a dimmer turn (`dimmer_rotated`), a command sent by a remote
    (`device_command`), the device restarting (`sensor_reset`). `attrs` are the Event's attrs."""

    kind: str
    attrs: dict[str, Value] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A successfully decoded advert.

    `values` use our point vocabulary (`opening`, `window`, `door_left_open`, `battery_pct`,
    `temperature_c`, ...). `packet_id` lets the tracker drop repeats of one transmission; `counter`
    is the encryption frame counter, set only when the advert was decrypted and its tag verified
    with the bindkey (`authenticated`), for the replay guard. `events` are what the device reports
    happening (button presses, dimmer turns...), in the advert's order.
    """

    format: str
    values: dict[str, Value]
    encrypted: bool = False
    packet_id: int | None = None
    counter: int | None = None
    model: str | None = None
    events: tuple[DeviceEvent, ...] = ()
    note: str | None = None  # a part we skipped (unknown object id, truncated tail)
    unknown_objects: int = 0  # event objects whose code the format does not define: no event

    @property
    def authenticated(self) -> bool:
        """Decrypted with the configured bindkey: only the key's holder can have produced it."""
        return self.counter is not None


Reason = Literal["malformed", "no_key", "wrong_key", "unsupported"]


@dataclass(frozen=True, slots=True)
class Undecodable:
    """An advert in a format we know that could not be decoded, and why (never an exception)."""

    format: str
    reason: Reason
    detail: str
    encrypted: bool = False
    model: str | None = None  # readable from a clear header even when the payload is not
