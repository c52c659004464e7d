"""Upstream schema v1: topics and JSON payloads (documented in docs/upstream-schema.md).

Topics: `{prefix}/{site}/{gateway}/{kind}/...` where kind is telemetry, state, event, alarm, stats,
birth, status or command (inbound; results on command/result). Every payload carries `schema`,
`gateway_id`, `seq` and `ts_ms`.
Encoding runs in the outbox writer thread, after `seq` is assigned, never on the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core import Event, Klass, Reading
from gateway.upstream.bridges.base import Bridges

SCHEMA_TELEMETRY = "lintel.telemetry/1"
SCHEMA_STATE = "lintel.state/1"
SCHEMA_EVENT = "lintel.event/1"
SCHEMA_STATS = "lintel.stats/1"
SCHEMA_BIRTH = "lintel.birth/1"
SCHEMA_STATUS = "lintel.status/1"
SCHEMA_COMMAND_RESULT = "lintel.command_result/1"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names of one gateway."""

    prefix: str
    site: str
    gateway_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.gateway_id}"

    def telemetry(self, source_id: str) -> str:
        return f"{self.base}/telemetry/{source_id}"

    def state(self, source_id: str, point: str) -> str:
        return f"{self.base}/state/{source_id}/{point}"

    def event(self, klass: Klass, source_id: str, kind: str) -> str:
        lane = "alarm" if klass == Klass.ALARM else "event"
        return f"{self.base}/{lane}/{source_id}/{kind}"

    @property
    def command(self) -> str:
        """Where commands to this gateway arrive (subscribed, QoS 1)."""
        return f"{self.base}/command"

    @property
    def deployment(self) -> str:
        """Retained per gateway: the signed config deployment it should run (docs/deployments.md)."""
        return f"{self.base}/command/deployment"

    @property
    def command_result(self) -> str:
        return f"{self.base}/command/result"

    @property
    def stats(self) -> str:
        return f"{self.base}/stats"

    @property
    def birth(self) -> str:
        return f"{self.base}/birth"

    @property
    def status(self) -> str:
        return f"{self.base}/status"


def _reading_item(r: Reading) -> dict[str, Any]:
    item: dict[str, Any] = {"point": r.point, "value": r.value, "ts_ms": r.ts_ms}
    if r.quality != "good":
        item["quality"] = r.quality
    if r.counter:
        item["kind"] = "counter"
    return item


class Encoder:
    """Builds (topic, payload bytes) for records once their seq is known. `bridges` add their own
    messages to each commit (gateway.upstream.bridges); none by default."""

    def __init__(self, topics: Topics, bridges: Bridges | None = None) -> None:
        self.topics = topics
        self.gateway_id = topics.gateway_id
        self.bridges = bridges if bridges is not None else Bridges()

    def telemetry(
        self, seq: int, now_ms: int, source_id: str, readings: Iterable[Reading]
    ) -> tuple[str, bytes]:
        payload = {
            "schema": SCHEMA_TELEMETRY,
            "gateway_id": self.gateway_id,
            "seq": seq,
            "ts_ms": now_ms,
            "source_id": source_id,
            "readings": [_reading_item(r) for r in readings],
        }
        return self.topics.telemetry(source_id), _dumps(payload).encode()

    def state(self, seq: int, r: Reading) -> tuple[str, bytes]:
        payload: dict[str, Any] = {
            "schema": SCHEMA_STATE,
            "gateway_id": self.gateway_id,
            "seq": seq,
            "ts_ms": r.ts_ms,
            "source_id": r.source_id,
            "point": r.point,
            "value": r.value,
        }
        if r.quality != "good":
            payload["quality"] = r.quality
        return self.topics.state(r.source_id, r.point), _dumps(payload).encode()

    def event(self, seq: int, e: Event) -> tuple[str, bytes]:
        payload = {
            "schema": SCHEMA_EVENT,
            "gateway_id": self.gateway_id,
            "seq": seq,
            "ts_ms": e.ts_ms,
            "source_id": e.source_id,
            "kind": e.kind,
            "severity": e.severity,
            "attrs": dict(e.attrs),
        }
        return self.topics.event(e.klass, e.source_id, e.kind), _dumps(payload).encode()

    def stats(self, seq: int, now_ms: int, body: Mapping[str, Any]) -> tuple[str, bytes]:
        payload = {"schema": SCHEMA_STATS, "gateway_id": self.gateway_id, "seq": seq, "ts_ms": now_ms, **body}
        return self.topics.stats, _dumps(payload).encode()

    def command_result(self, seq: int, now_ms: int, body: Mapping[str, Any]) -> tuple[str, bytes]:
        payload = {
            "schema": SCHEMA_COMMAND_RESULT,
            "gateway_id": self.gateway_id,
            "seq": seq,
            "ts_ms": now_ms,
            **body,
        }
        return self.topics.command_result, _dumps(payload).encode()

    def birth(self, last_seq: int, now_ms: int, body: Mapping[str, Any]) -> bytes:
        payload = {
            "schema": SCHEMA_BIRTH,
            "gateway_id": self.gateway_id,
            "seq": last_seq,
            "ts_ms": now_ms,
            **body,
        }
        return _dumps(payload).encode()

    def status(self, last_seq: int, now_ms: int, state: str) -> bytes:
        payload = {
            "schema": SCHEMA_STATUS,
            "gateway_id": self.gateway_id,
            "seq": last_seq,
            "ts_ms": now_ms,
            "state": state,
        }
        return _dumps(payload).encode()
