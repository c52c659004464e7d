"""Home Assistant's BTHome parser (bthome-ble, a dev dependency) beside ours, on the same adverts.

`reference_events` and `our_events` put both parsers' events in one shape, (channel, event type,
properties), so a differential run compares them item for item: our `button_pressed` {button,
press} is HA's event `press` on key `button`; `dimmer_rotated` {direction: left} is `rotate_left`
with {"steps"}; `device_command` {opcode, args} is the opcode with {"args": hex} (HA always sets
args). `random_event_advert` makes the adverts: event objects (0x3A button, 0x3B command, 0x3C
dimmer) with any code, defined or not, in the ascending object order devices use.
"""

from __future__ import annotations

import json
import random

from drivers.ble import bthome
from drivers.ble.adverts import Decoded, mac_bytes

BTHOME_SERVICE = "0000fcd2-0000-1000-8000-00805f9b34fb"
ADDRESS = "A4:C1:38:8D:18:B2"

Events = list[tuple[str, str, str]]


def reference_events(data: bytes, address: str = ADDRESS) -> Events:
    """The events Home Assistant's parser fires for one plaintext advert (a fresh device each time:
    no packet-id dedup between adverts)."""
    from bthome_ble.parser import BTHomeBluetoothDeviceData
    from habluetooth import BluetoothServiceInfoBleak

    info = BluetoothServiceInfoBleak(
        name="differential",
        address=address,
        rssi=-60,
        manufacturer_data={},
        service_data={BTHOME_SERVICE: data},
        service_uuids=[],
        source="",
        device=None,  # type: ignore[arg-type]  # as bthome-ble's own tests build it
        advertisement=None,
        connectable=False,
        time=1.0,
        tx_power=None,
    )
    update = BTHomeBluetoothDeviceData().update(info)
    return sorted(
        (key.key, event.event_type, json.dumps(event.event_properties, sort_keys=True))
        for key, event in update.events.items()
    )


def our_events(data: bytes, address: str = ADDRESS) -> tuple[Events, int]:
    """(events in the reference's shape, undefined codes counted) of our decoder."""
    result = bthome.decode(mac_bytes(address), data, None)
    if not isinstance(result, Decoded):
        return [], 0
    out: Events = []
    for e in result.events:
        a = e.attrs
        if e.kind == "button_pressed":
            out.append((str(a["button"]), str(a["press"]), "null"))
        elif e.kind == "dimmer_rotated":
            out.append((str(a["dimmer"]), f"rotate_{a['direction']}", json.dumps({"steps": a["steps"]})))
        elif e.kind == "device_command":
            out.append((str(a["command"]), str(a["opcode"]), json.dumps({"args": a.get("args", "")})))
        else:
            out.append((e.kind, json.dumps(a, sort_keys=True), ""))
    return sorted(out), result.unknown_objects


def random_event_advert(rng: random.Random) -> bytes:
    """Service data of one plaintext advert: a battery object and 1-4 event objects with random
    codes (a third of them from the spec's tables, the rest any byte)."""
    body = bytearray([0x01, rng.randrange(101)])
    objects = sorted(rng.choice((0x3A, 0x3B, 0x3C)) for _ in range(rng.randint(1, 4)))
    for oid in objects:
        body.append(oid)
        if oid == 0x3A:
            body.append(
                rng.choice((0x00, 0x01, 0x04, 0x80, 0x81)) if rng.random() < 0.3 else rng.randrange(256)
            )
        elif oid == 0x3C:
            body += bytes(
                [rng.choice((0, 1, 2)) if rng.random() < 0.3 else rng.randrange(256), rng.randrange(256)]
            )
        else:
            args = bytes(rng.randrange(256) for _ in range(rng.randrange(3)))
            opcode = rng.randrange(5) if rng.random() < 0.3 else rng.randrange(256)
            body += bytes([len(args), opcode]) + args
    return bytes([0x40]) + bytes(body)
