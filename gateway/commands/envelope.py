"""Parse and check a command's bytes against `command.schema.json` (the file `docs/` links to).

The JSON Schema is the single statement of what a command looks like: the gateway validates with
it at run time, and the docs publish the same file, so the two cannot drift apart. Decoding
(`decode`) and schema checking (`validate`) are separate steps because the router verifies the
signature in between: a flood of unsigned junk never reaches the (slower) schema validator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from gateway.commands.refusals import Code, Refusal

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

MAX_COMMAND_BYTES = 300_000  # a whole config file fits; anything bigger is refused unread


@cache
def _validator() -> Draft202012Validator:
    # Imported with the first signed command, not at start: jsonschema and what it brings
    # (referencing, rpds, attrs) are ~4.6 MB of RSS that a gateway without commands never needs.
    from jsonschema import Draft202012Validator

    text = files("gateway.commands").joinpath("command.schema.json").read_text(encoding="utf-8")
    return Draft202012Validator(json.loads(text))


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    command: str
    ts_ms: int
    nonce: str
    args: dict[str, Any] = field(default_factory=dict)
    expires_ms: int | None = None
    by: str | None = None  # a technician's name, honoured on the local control socket only
    key_id: str | None = None
    gateway_id: str | None = None
    site: str | None = None


class Malformed(Refusal):
    """The bytes are not a valid command. `correlation_id`/`command` are what could be read."""

    def __init__(self, detail: str, correlation_id: str | None = None, command: str | None = None) -> None:
        super().__init__(Code.MALFORMED, detail)
        self.correlation_id = correlation_id
        self.command = command


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        # Two parsers may keep different copies of a repeated key: the signed text would be ambiguous.
        raise ValueError("a key appears twice in one object")
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(payload: bytes) -> dict[str, Any]:
    """The JSON object in `payload`; `Malformed` if too large, not strict JSON, or not an object."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise Malformed(f"too large: {len(payload)} bytes (at most {MAX_COMMAND_BYTES})")
    try:
        doc = json.loads(payload, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Malformed(f"not JSON: {exc}") from None
    except ValueError as exc:
        raise Malformed(f"not JSON: {exc}") from None
    except RecursionError:
        raise Malformed("not JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise Malformed(f"not a JSON object: got {type(doc).__name__}")
    return doc


def readable_ids(doc: dict[str, Any]) -> tuple[str | None, str | None]:
    """(correlation id, command name) as far as they can be read, for a result to a bad command."""
    raw_id = doc.get("id")
    cid = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 128 else None
    raw_cmd = doc.get("command")
    cmd = raw_cmd if isinstance(raw_cmd, str) and len(raw_cmd) <= 64 else None
    return cid, cmd


def parse_command(payload: bytes) -> Command:
    """Decode and validate; raise `Malformed` with a one-line reason a sender can act on."""
    return validate(decode(payload))


def validate(doc: dict[str, Any]) -> Command:
    """Check a decoded envelope against the JSON Schema; `Malformed` names the first bad place."""
    cid, cmd = readable_ids(doc)
    try:
        error = next(iter(sorted(_validator().iter_errors(doc), key=lambda e: list(e.path))), None)
    except RecursionError:
        raise Malformed("schema: nested too deeply", cid, cmd) from None
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
        raise Malformed(f"schema: {where}: {message}", cid, cmd)
    return Command(
        id=doc["id"],
        command=doc["command"],
        ts_ms=doc["ts_ms"],
        nonce=doc["nonce"],
        args=doc.get("args") or {},
        expires_ms=doc.get("expires_ms"),
        by=doc.get("by"),
        key_id=doc.get("key_id"),
        gateway_id=doc.get("gateway_id"),
        site=doc.get("site"),
    )
