"""`[commands]`: which commands this gateway accepts, and the operator keys allowed to sign them.

Every remote command is signed by one of the `[[commands.operators]]` keys (Ed25519); a key may
issue only the commands in its `allow`, and `door_pulse` only for the doors in its `doors`. The one
exception is `ping`, which may be accepted unsigned when `unsigned = ["ping"]` says so. Public keys
are decoded here (pure, no file is read) so that a bad key is a config error with its path.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from pydantic import Field, field_validator, model_validator

from gateway.core.config_base import Identifier, StrictModel, custom_error
from gateway.core.references import Ref

CommandName = Literal[
    "ping",
    "reload_config",
    "alarm_ack",
    "snapshot",
    "door_pulse",
    "faces_delete",
    "outbox_stats",
    "deploy_config",
    "update",
]

SAFE_COMMANDS: tuple[CommandName, ...] = ("ping", "outbox_stats", "alarm_ack")

# Commands that act on one door: the argument naming it, checked against the key's `doors`.
DOOR_SCOPED: dict[str, str] = {"door_pulse": "door"}

ALL_DOORS = "*"

KEY_EXPECTED = (
    "an Ed25519 public key: 44 characters of base64 (the raw 32 bytes, as `lintel keys new` prints) "
    "or a PEM block starting with -----BEGIN PUBLIC KEY-----"
)


def decode_public_key(text: str) -> bytes:
    """The raw 32 bytes of an Ed25519 public key written as base64 or PEM; ValueError if not one."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = load_pem_public_key(text.encode())
        except (ValueError, TypeError):
            raise ValueError("not a readable PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"a PEM key of another type ({type(key).__name__}), not Ed25519")
        return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{len(raw)} bytes once decoded, an Ed25519 key has 32")
    return raw


class OperatorKey(StrictModel):
    id: Identifier = Field(description="The key's id: what results and the audit trail name as `by`.")
    public_key: str = Field(description="Ed25519 public key: base64 of the raw 32 bytes, or PEM.")
    allow: list[CommandName] = Field(min_length=1, description="Commands this key may sign.")
    doors: list[str] = Field(
        default_factory=list, description='Doors this key may pulse (door ids, or ["*"] for every door).'
    )

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        try:
            decode_public_key(value)
        except ValueError as exc:
            raise custom_error(f"not an Ed25519 public key: {exc}", KEY_EXPECTED) from None
        return value

    @model_validator(mode="after")
    def _doors_match_allow(self) -> OperatorKey:
        scoped = [c for c in self.allow if c in DOOR_SCOPED]
        if scoped and not self.doors:
            raise custom_error(
                f"{scoped[0]} is allowed but no door is",
                'the doors this key may open, e.g. doors = ["lobby"] (or ["*"] for every door)',
                key="doors",
                got="[]",
            )
        if self.doors and not scoped:
            raise custom_error(
                "doors given but the key may not pulse any",
                '"door_pulse" in allow, or no doors',
                key="doors",
                got=str(self.doors),
            )
        return self


class CommandsSection(StrictModel):
    enabled: bool = Field(True, description="Listen on the command topic (needs [mqtt]).")
    allow: list[CommandName] = Field(
        default_factory=lambda: list(SAFE_COMMANDS),
        description="Commands accepted from upstream at all (each key is further limited by its allow).",
    )
    unsigned: list[Literal["ping"]] = Field(
        default_factory=list, description='Commands accepted without a signature: [] or ["ping"].'
    )
    operators: list[OperatorKey] = Field(
        default_factory=list, description="Operator keys that may sign commands, with their roles."
    )
    max_age_s: float = Field(300, gt=0, le=86_400, description="Older commands are refused as expired.")
    max_skew_s: float = Field(30, ge=0, le=3600, description="Commands dated further ahead are refused.")
    clock_sync: Literal["kernel", "assume"] = Field(
        "kernel",
        description=(
            "Commands are refused (clock_unsynced) while the kernel says no time server keeps the clock"
            ' ("kernel", as timedatectl shows it); "assume" trusts the clock without one (an isolated site'
            " with an RTC)."
        ),
    )
    max_per_minute: int = Field(
        120,
        ge=1,
        le=100_000,
        description="Per operator key (unsigned, unverified senders share one budget); more are refused.",
    )

    @model_validator(mode="after")
    def _operators(self) -> CommandsSection:
        ids: set[str] = set()
        keys: dict[bytes, str] = {}
        accepted = set(self.allow)
        for index, op in enumerate(self.operators):
            where = f"operators[{index}]"
            if op.id in ids:
                raise custom_error(
                    "duplicate operator id", "an id used by one key only", key=f"{where}.id", got=op.id
                )
            ids.add(op.id)
            raw = decode_public_key(op.public_key)
            if raw in keys:
                raise custom_error(
                    f"the same public key as operator {keys[raw]}",
                    "one key per operator (`lintel keys new` makes another)",
                    key=f"{where}.public_key",
                    got=op.public_key[:12] + "…",
                )
            keys[raw] = op.id
            for j, name in enumerate(op.allow):
                if name not in accepted:
                    raise custom_error(
                        "the key may sign a command this gateway does not accept",
                        f"commands in [commands] allow ({', '.join(self.allow) or 'none'}); "
                        f"add {name} there too or remove it here",
                        key=f"{where}.allow[{j}]",
                        got=name,
                    )
        return self


def references(section: CommandsSection) -> list[Ref]:
    """The doors each operator key may open ("*": all of them)."""
    return [
        Ref(f"commands.operators[{i}].doors[{j}]", door, "door", "unknown door", 'a [[doors]] entry, or "*"')
        for i, op in enumerate(section.operators)
        for j, door in enumerate(op.doors)
        if door != ALL_DOORS
    ]
