"""Pick the decoder for an advert by its service data UUID. Pure; never raises."""

from __future__ import annotations

from collections.abc import Callable

from drivers.ble import bthome, mibeacon, qingping
from drivers.ble.adverts import BTHOME_UUID, MIBEACON_UUID, QINGPING_UUID, Advert, Decoded, Undecodable

Decoder = Callable[[bytes, bytes, bytes | None], Decoded | Undecodable]

DECODERS: dict[str, Decoder] = {
    BTHOME_UUID: bthome.decode,
    MIBEACON_UUID: mibeacon.decode,
    QINGPING_UUID: qingping.decode,
}


def decode_advert(advert: Advert, mac: bytes, key: bytes | None = None) -> Decoded | Undecodable | None:
    """The first known service data section of `advert`, decoded; None if it carries none we know."""
    for uuid, data in advert.service_data.items():
        decoder = DECODERS.get(uuid)
        if decoder is not None:
            return decoder(mac, data, key)
    return None
