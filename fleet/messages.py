"""What an ingest worker accepts from the broker: topic and payload checked, as typed messages.

Every payload is hostile until checked: its size is bounded before it is parsed, the topic must be
`{prefix}/{site}/{gateway}/{kind}/...` with a kind we read, the payload's `gateway_id` must be the
topic's (so a gateway allowed to publish on its own topics cannot write another's rows), `seq` and
`ts_ms` must be non-negative integers, and the schema's major must be one we know. Anything else is
a `Rejected` with a short reason, counted by the worker; it never raises.
Field meanings: docs/upstream-schema.md. Topic names come from gateway.upstream.encode.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gateway.upstream.encode import (
    SCHEMA_BIRTH,
    SCHEMA_COMMAND_RESULT,
    SCHEMA_EVENT,
    SCHEMA_STATE,
    SCHEMA_STATS,
    SCHEMA_STATUS,
    SCHEMA_TELEMETRY,
)

MAX_PAYLOAD_BYTES = 512 * 1024
# as the gateway's config and the command schema allow them: a topic naming anything else is refused
GATEWAY_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SITE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_JSON_INT = 2**53

# topic kind -> the schema its payload must carry
SCHEMAS = {
    "telemetry": SCHEMA_TELEMETRY,
    "state": SCHEMA_STATE,
    "event": SCHEMA_EVENT,
    "alarm": SCHEMA_EVENT,
    "stats": SCHEMA_STATS,
    "birth": SCHEMA_BIRTH,
    "status": SCHEMA_STATUS,
    "command/result": SCHEMA_COMMAND_RESULT,
}
# kinds whose seq is the message's own (the others carry the highest seq so far)
DATA_KINDS = frozenset({"telemetry", "state", "event", "alarm", "stats", "command/result"})


@dataclass(frozen=True, slots=True)
class Message:
    """One checked message. `kind` is the topic's kind (`command/result` for results)."""

    prefix: str
    site: str
    gateway_id: str
    kind: str
    seq: int
    ts_ms: int
    doc: dict[str, Any]

    @property
    def is_data(self) -> bool:
        return self.kind in DATA_KINDS


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    topic: str


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_JSON_INT


def parse(topic: str, payload: bytes) -> Message | Rejected | None:
    """The message on `topic`, a Rejected, or None for topics the fleet does not read (commands
    going to gateways, bridges' own topics)."""
    parts = topic.split("/")
    if len(parts) < 4:
        return None
    prefix, site, gateway_id, kind = parts[0], parts[1], parts[2], parts[3]
    if kind == "command":
        if len(parts) == 5 and parts[4] == "result":
            kind = "command/result"
        else:
            return None  # a command on its way to a gateway, perhaps our own
    if kind not in SCHEMAS:
        return None
    if not GATEWAY_ID_RE.match(gateway_id) or not SITE_RE.match(site):
        return Rejected("the topic's site or gateway id is not one a gateway can have", topic[:200])
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejected(f"payload of {len(payload)} bytes (limit {MAX_PAYLOAD_BYTES})", topic)
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return Rejected("payload is not JSON", topic)
    if not isinstance(doc, dict):
        return Rejected("payload is not a JSON object", topic)
    schema = doc.get("schema")
    if schema != SCHEMAS[kind]:
        family = SCHEMAS[kind].rsplit("/", 1)[0]
        if isinstance(schema, str) and schema.startswith(family + "/"):
            return Rejected(f"schema {schema[:40]!r}: a major this fleet does not know", topic)
        return Rejected(f"schema {str(schema)[:40]!r} on a {kind} topic", topic)
    if doc.get("gateway_id") != gateway_id:
        return Rejected("gateway_id differs from the topic's gateway", topic)
    seq, ts_ms = doc.get("seq"), doc.get("ts_ms")
    if not _int(seq) or not _int(ts_ms):
        return Rejected("seq or ts_ms is not a non-negative integer", topic)
    problem = _check_body(kind, doc)
    if problem:
        return Rejected(problem, topic)
    assert isinstance(seq, int) and isinstance(ts_ms, int)  # _int() checked both
    return Message(prefix, site, gateway_id, kind, seq, ts_ms, doc)


def _check_body(kind: str, doc: dict[str, Any]) -> str | None:
    """The fields the store reads, with the types it relies on."""
    if kind == "telemetry":
        readings = doc.get("readings")
        if not isinstance(doc.get("source_id"), str) or not isinstance(readings, list):
            return "telemetry without source_id or readings"
        for r in readings:
            if not isinstance(r, dict) or not isinstance(r.get("point"), str) or not _int(r.get("ts_ms")):
                return "a reading without point or ts_ms"
    elif kind == "state":
        if not isinstance(doc.get("source_id"), str) or not isinstance(doc.get("point"), str):
            return "state without source_id or point"
    elif kind in ("event", "alarm"):
        if not all(isinstance(doc.get(k), str) for k in ("source_id", "kind", "severity")):
            return "event without source_id, kind or severity"
        if not isinstance(doc.get("attrs"), dict):
            return "event attrs is not an object"
    elif kind == "stats":
        if not isinstance(doc.get("devices", []), list) or not isinstance(doc.get("outbox", {}), dict):
            return "stats devices or outbox malformed"
    elif kind == "command/result":
        if not isinstance(doc.get("outcome"), str):
            return "command result without outcome"
    elif kind == "status" and doc.get("state") not in ("online", "offline"):
        return "status state is neither online nor offline"
    return None
