"""What the gallery key does: it seals the gallery's personal data and makes the pseudonyms.

- Templates (descriptor vectors) are sealed with AES-GCM; the associated data binds each one to its
  resident and embedder, so a row copied to another resident does not decrypt.
- A resident's unit number and consent text are sealed the same way, bound to the resident and the
  column; a tag's address and bindkey (tag_store.py) are sealed as a blob bound to what the caller
  names.
- `pseudonym(resident_id)`: an HMAC under the key (`p-` and 16 hex digits), the same on this
  gateway for as long as its key lives and unlinkable without it.
- A known plaintext sealed under the key (`key_check`) tells a wrong key apart from a corrupt row.
Opening returns None when a value does not decrypt: the gallery says what that means to its user.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_CHECK = b"lintel face gallery key check v1"
PSEUDONYM_LABEL = b"lintel resident pseudonym v1\x00"
NONCE_BYTES = 12


def template_aad(resident_id: str, model: str) -> bytes:
    return f"{resident_id}\x00{model}".encode()


def column_aad(resident_id: str, column: str) -> bytes:
    return f"{resident_id}\x00residents.{column}".encode()


class Sealer:
    """AES-GCM and the pseudonym HMAC under one gallery key (32 bytes, gateway.lanes.faces.keys)."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._pseudonym_key = hmac.new(key, PSEUDONYM_LABEL, hashlib.sha256).digest()

    def pseudonym(self, resident_id: str) -> str:
        return "p-" + hmac.new(self._pseudonym_key, resident_id.encode(), hashlib.sha256).hexdigest()[:16]

    def seal_parts(self, data: bytes, aad: bytes) -> tuple[bytes, bytes]:
        """(nonce, AES-GCM of `data` bound to `aad`): the templates table keeps them apart."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce, self._aead.encrypt(nonce, data, aad)

    def open_parts(self, nonce: bytes, sealed: bytes, aad: bytes) -> bytes | None:
        try:
            return self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            return None

    def seal(self, data: bytes, aad: bytes) -> bytes:
        """nonce + AES-GCM of `data`, bound to `aad`, as one blob."""
        nonce, sealed = self.seal_parts(data, aad)
        return nonce + sealed

    def open(self, blob: bytes, aad: bytes) -> bytes | None:
        """The inverse of `seal`; None when it does not decrypt (altered, or moved)."""
        return self.open_parts(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)

    def key_check(self) -> bytes:
        """The known plaintext sealed under this key, for a new gallery's meta table."""
        return self.seal(KEY_CHECK, b"key_check")

    def opens_key_check(self, blob: bytes) -> bool:
        """True when `blob` (a gallery's key check) was sealed under this key."""
        return self.open(blob, b"key_check") is not None
