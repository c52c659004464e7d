"""The operator's side: make a key pair, build a command envelope and sign it.

Used by `lintel keys new|sign`, the tests and the benchmark; an operator's backend can do the same in
a few lines of any language with an Ed25519 and an RFC 8785 (JCS) library (docs/commands.md).
Private keys are PKCS#8 PEM files, created with mode 0600 and never overwritten; a first line
`lintel-key-id: ID` (explanatory text before the PEM block, which PEM readers skip) records the id
the key is listed under in the gateways' configs.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from gateway.commands.canonical import SIG_FIELD, canonical_bytes

SCHEMA = "lintel.command/1"
KEY_ID_LINE = b"lintel-key-id: "


class KeyFileError(Exception):
    """A private key file that cannot be used (the message says why and what to do)."""


def new_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """The public half as the config writes it: base64 of the raw 32 bytes."""
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def write_private_key(path: Path, key: Ed25519PrivateKey, key_id: str) -> None:
    """Write `key` (listed as `key_id`) as PKCS#8 PEM, mode 0600; never replaces an existing file."""
    pem = KEY_ID_LINE + key_id.encode() + b"\n"
    pem += key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} exists: a key is never overwritten (choose another --out)") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())


def load_private_key(path: Path) -> tuple[Ed25519PrivateKey, str | None]:
    """A private key written by `write_private_key` (or any unencrypted Ed25519 PKCS#8 PEM), and
    the key id its first line records (None if it has none)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    first = data.split(b"\n", 1)[0]
    if not first.startswith(KEY_ID_LINE):
        return key, None
    return key, first[len(KEY_ID_LINE) :].decode("ascii", "replace").strip() or None


def envelope(
    command: str,
    args: dict[str, Any] | None = None,
    *,
    gateway_id: str,
    site: str,
    key_id: str | None = None,
    ts_ms: int | None = None,
    nonce: str | None = None,
    correlation_id: str | None = None,
    expires_ms: int | None = None,
) -> dict[str, Any]:
    """An unsigned envelope for `command` to gateway `gateway_id` at `site`, fresh id, time and nonce."""
    body: dict[str, Any] = {
        "schema": SCHEMA,
        "id": correlation_id or f"c-{secrets.token_hex(6)}",
        "gateway_id": gateway_id,
        "site": site,
        "command": command,
        "ts_ms": time.time_ns() // 1_000_000 if ts_ms is None else ts_ms,
        "nonce": nonce or secrets.token_hex(12),
        "args": args or {},
    }
    if key_id is not None:
        body["key_id"] = key_id
    if expires_ms is not None:
        body["expires_ms"] = expires_ms
    return body


def deployment(
    config_toml: str,
    version: int,
    *,
    gateway_id: str,
    site: str,
    gateway_public_key: str | None = None,
    secrets: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An unsigned `deploy_config` envelope: `config_toml` as deployment `version`, each of `secrets`
    (name -> plaintext) sealed to the gateway's `deploy_key` (its birth's `gateway_public_key`)."""
    args: dict[str, Any] = {"version": version, "config_toml": config_toml}
    if secrets:
        if gateway_public_key is None:
            raise ValueError("secrets need the gateway's public key (deploy_key in its birth)")
        from gateway.config.secrets import seal

        args["secrets"] = {name: seal(gateway_public_key, name, value) for name, value in secrets.items()}
    return envelope("deploy_config", args, gateway_id=gateway_id, site=site)


def sign(body: dict[str, Any], key: Ed25519PrivateKey, key_id: str | None = None) -> dict[str, Any]:
    """A copy of `body` with `key_id` (if given) and `sig` over its canonical form."""
    signed = {k: v for k, v in body.items() if k != SIG_FIELD}
    if key_id is not None:
        signed["key_id"] = key_id
    signed[SIG_FIELD] = base64.b64encode(key.sign(canonical_bytes(signed))).decode()
    return signed
