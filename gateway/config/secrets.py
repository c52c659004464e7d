"""Secrets sent from the office: the gateway's own X25519 key, sealed boxes, and the secret store.

Each gateway makes an X25519 key pair at its first start (`<state_dir>/gateway.key`, mode 0600) and
publishes the public half in its birth (`deploy_key`). An operator seals a secret (a broker password,
a camera password) to that public key; only this gateway can open it. A sealed secret is text:

    lintel-sealed/1:<base64 of ephemeral public key (32) | nonce (12) | ChaCha20-Poly1305 ciphertext>

The key is HKDF-SHA256 over the X25519 shared secret, salted with both public keys; the secret's
*name* is the AEAD's associated data, so a box sealed as "mqtt" cannot be replayed as "camera-north".
Opened secrets live in the secret store (`<state_dir>/secrets.json`, 0600, replaced durably) and are
referenced by name in the config (`password_secret = "mqtt"`), never by a path a remote party chose.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.core.files import replace_durably

SEALED_PREFIX = "lintel-sealed/1:"
KEY_NAME = "gateway.key"
STORE_NAME = "secrets.json"
SECRET_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_SECRET_BYTES = 4096
_INFO = b"lintel sealed secret v1"


class SecretError(Exception):
    """A sealed secret that cannot be opened, or a store that cannot be used (the message says why)."""


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_INFO)
    return hkdf.derive(shared)


def decode_public(text: str) -> X25519PublicKey:
    """A gateway's public key as its birth prints it (base64 of 32 bytes); ValueError if not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{len(raw)} bytes once decoded, an X25519 key has 32")
    return X25519PublicKey.from_public_bytes(raw)


def seal(recipient_b64: str, name: str, plaintext: str) -> str:
    """Seal `plaintext` as secret `name` for the gateway whose public key is `recipient_b64`."""
    if not SECRET_NAME.match(name):
        raise ValueError(f"secret name {name!r}: expected a-z, 0-9, _ . - (at most 64)")
    data = plaintext.encode("utf-8")
    if not data or len(data) > MAX_SECRET_BYTES:
        raise ValueError(f"a secret holds 1 to {MAX_SECRET_BYTES} bytes, not {len(data)}")
    recipient = decode_public(recipient_b64)
    ephemeral = X25519PrivateKey.generate()
    eph_raw = _raw(ephemeral.public_key())
    key = _key(ephemeral.exchange(recipient), eph_raw, _raw(recipient))
    nonce = os.urandom(12)
    box = ChaCha20Poly1305(key).encrypt(nonce, data, name.encode())
    return SEALED_PREFIX + base64.b64encode(eph_raw + nonce + box).decode()


class GatewayKey:
    """This gateway's X25519 key pair, made once and kept in the state folder (0600)."""

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private
        self.public_b64 = base64.b64encode(_raw(private.public_key())).decode()

    @classmethod
    def load_or_create(cls, state_dir: Path) -> GatewayKey:
        path = state_dir / KEY_NAME
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            private = X25519PrivateKey.generate()
            state_dir.mkdir(parents=True, exist_ok=True)
            from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

            data = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            return cls(private)
        if len(raw) != 32:
            raise SecretError(f"{path} holds {len(raw)} bytes, not an X25519 key: move it aside to make one")
        return cls(X25519PrivateKey.from_private_bytes(raw))

    def open(self, name: str, sealed: str) -> str:
        """The plaintext of a secret sealed to this gateway as `name`; SecretError if it is not one."""
        if not isinstance(sealed, str) or not sealed.startswith(SEALED_PREFIX):
            raise SecretError(f"secret {name}: not a sealed secret (expected {SEALED_PREFIX}…)")
        try:
            blob = base64.b64decode(sealed[len(SEALED_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise SecretError(f"secret {name}: not base64") from None
        if len(blob) < 32 + 12 + 16 + 1 or len(blob) > 32 + 12 + 16 + MAX_SECRET_BYTES:
            raise SecretError(f"secret {name}: {len(blob)} bytes is not a sealed secret's size")
        eph_raw, nonce, box = blob[:32], blob[32:44], blob[44:]
        shared = self._private.exchange(X25519PublicKey.from_public_bytes(eph_raw))
        key = _key(shared, eph_raw, _raw(self._private.public_key()))
        try:
            data = ChaCha20Poly1305(key).decrypt(nonce, box, name.encode())
        except InvalidTag:
            raise SecretError(
                f"secret {name}: does not open with this gateway's key (sealed to another gateway, "
                "under another name, or changed)"
            ) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(f"secret {name}: not UTF-8 text") from None


class SecretStore:
    """Opened secrets by name in one 0600 JSON file, replaced atomically and synced."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STORE_NAME

    def load(self) -> dict[str, str]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise SecretError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise SecretError(f"{self.path} is not JSON: the secrets must be deployed again") from None
        if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
            raise SecretError(f"{self.path} is not a table of names to secrets")
        return doc

    def names(self) -> list[str]:
        return sorted(self.load())

    def merge(self, secrets: Mapping[str, str]) -> None:
        """Add or replace `secrets`; the others stay."""
        doc = {**self.load(), **secrets}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_durably(self.path, json.dumps(doc, sort_keys=True).encode())
        os.chmod(self.path, 0o600)
