"""AES-CCM with a 4-byte tag, as both BTHome v2 and MiBeacon v4/v5 use it.

Cipher objects are cached per key: building one costs more than decrypting a 10-byte payload.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM


@lru_cache(maxsize=256)
def _cipher(key: bytes) -> AESCCM:
    return AESCCM(key, tag_length=4)


def decrypt(
    key: bytes, nonce: bytes, ciphertext: bytes, tag: bytes, aad: bytes | None = None
) -> bytes | None:
    """The plaintext, or None when the tag does not verify (wrong key or tampered advert)."""
    try:
        return _cipher(key).decrypt(nonce, ciphertext + tag, aad)
    except InvalidTag:
        return None


def encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes | None = None) -> tuple[bytes, bytes]:
    """(ciphertext, tag): used by the simulator and the tests to build real encrypted adverts."""
    sealed = _cipher(key).encrypt(nonce, plaintext, aad)
    return sealed[:-4], sealed[-4:]
