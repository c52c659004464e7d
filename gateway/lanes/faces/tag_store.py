"""Residents' BLE tags in the face gallery: the second factor of `require = "face+tag"` doors.

One tag per resident: an encrypted BTHome v2 fob or button (a Shelly BLU Button, any BTHome
device with encryption on), named by its Bluetooth address and its 16-byte bindkey. Both are
sealed with the gallery key (AES-GCM, bound to the resident), like the templates: the address links
a device to a person, and the key is what proves the device is present. Decrypted only in memory.
Set with `lintel faces tag`; removed with the resident (`faces delete`, which purges the file).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from gateway.lanes.faces.gallery import Gallery, GalleryError

ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")
KEY_HEX = re.compile(r"^[0-9a-fA-F]{32}$")


@dataclass(frozen=True, slots=True)
class ResidentTag:
    resident_id: str
    address: str  # upper case, colons
    key: bytes  # 16 bytes

    def __repr__(self) -> str:  # never the key in a log line or a traceback
        return f"ResidentTag({self.resident_id!r}, {self.address!r}, key=…)"


def _aad(resident_id: str) -> bytes:
    return f"{resident_id}\x00tags".encode()


def normalise_address(text: str) -> str:
    """`e4-aa-ec-81-21-ae` → `E4:AA:EC:81:21:AE`; GalleryError with the expected form otherwise."""
    address = text.strip().upper().replace("-", ":")
    if not ADDRESS.match(address):
        raise GalleryError(
            f"tag address {text!r} is not a Bluetooth address: six hex pairs like E4:AA:EC:81:21:AE"
        )
    return address


def parse_bindkey(text: str) -> bytes:
    text = text.strip()
    if not KEY_HEX.match(text):
        raise GalleryError("the tag's bindkey must be 32 hex digits (the 16-byte key from the tag's app)")
    return bytes.fromhex(text)


def set_tag(gallery: Gallery, resident_id: str, address: str, key: bytes, now_ms: int) -> None:
    """Give an enrolled resident this tag (replacing theirs); another resident's tag is refused."""
    address = normalise_address(address)
    if len(key) != 16:
        raise GalleryError("the tag's bindkey must be 16 bytes")
    if gallery.resident(resident_id) is None:
        raise GalleryError(f"no resident {resident_id!r} in the face gallery: enrol the face first")
    owner = next((t.resident_id for t in tags(gallery).values() if t.address == address), None)
    if owner is not None and owner != resident_id:
        raise GalleryError(
            f"tag {address} already belongs to resident {owner}: `lintel faces tag {owner} --remove` first"
        )
    sealed = gallery.seal_blob(json.dumps({"address": address, "key": key.hex()}).encode(), _aad(resident_id))
    db = gallery.db
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO tags VALUES (?, ?, ?) ON CONFLICT(resident_id) DO UPDATE SET "
            "sealed = excluded.sealed, created_ms = excluded.created_ms",
            (resident_id, sealed, now_ms),
        )
        gallery.bump()
    gallery.purge()  # the replaced tag's sealed row is in free pages and the WAL until then


def remove_tag(gallery: Gallery, resident_id: str) -> bool:
    """Remove a resident's tag; False when they had none."""
    db = gallery.db
    with db:
        db.execute("BEGIN IMMEDIATE")
        removed = db.execute("DELETE FROM tags WHERE resident_id = ?", (resident_id,)).rowcount
        if removed:
            gallery.bump()
    if removed:
        gallery.purge()
    return bool(removed)


def tags(gallery: Gallery) -> dict[str, ResidentTag]:
    """Every resident's tag, decrypted, by resident id."""
    out: dict[str, ResidentTag] = {}
    for resident_id, sealed in gallery.db.execute(
        "SELECT resident_id, sealed FROM tags ORDER BY resident_id"
    ):
        plain = gallery.open_blob(bytes(sealed), _aad(resident_id))
        if plain is None:
            raise GalleryError(
                f"the tag of {resident_id} does not decrypt: the gallery was altered; "
                f"set it again (`lintel faces tag {resident_id} ...`)"
            )
        row = json.loads(plain)
        out[resident_id] = ResidentTag(resident_id, row["address"], bytes.fromhex(row["key"]))
    return out
