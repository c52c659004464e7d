"""The bridge extension point: conventions published *beside* the native schema (ARCHITECTURE §6).

A bridge turns the records of one outbox commit into additional MQTT messages for a convention
(Home Assistant discovery, ...). Its contract:

- `messages(group)` runs in the outbox writer thread, inside the commit that accepts the records:
  every message it returns gets its own outbox row and `seq` in that same transaction, so what a
  bridge publishes is durable and delivered exactly like native messages (QoS 1, deleted on PUBACK,
  at-least-once). It must be fast, never raise for bad input (it is counted and logged once), and
  never block. Its rows carry `records = 0`: the native message is the one that counts the record.
- `on_connect()` runs in the uplink thread on every connection, before any outbox message goes out:
  messages derived from configuration (not from records), published like the native birth.
- `retained(topic)` says whether one of its topics is published retained. The uplink asks it for
  every message; a retained topic keeps only its newest value, so a backlog message for a topic
  already sent live on this connection is superseded and acknowledged without being sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.core import Event, Klass, Reading

log = logging.getLogger("lintel.bridges")


@dataclass(frozen=True, slots=True)
class BridgeMessage:
    """One message of a bridge. `klass` is the outbox class of its row (its priority and order)."""

    topic: str
    payload: bytes
    klass: Klass = Klass.EVENT
    retain: bool = False


@dataclass(slots=True)
class Group:
    """What one outbox commit accepts, as a bridge sees it: records in submission order, and the
    gateway stats bodies (with the commit's time)."""

    records: Sequence[Reading | Event] = ()
    stats: Sequence[Mapping[str, Any]] = ()
    now_ms: int = 0


class Bridge(Protocol):
    name: str

    def messages(self, group: Group) -> list[BridgeMessage]: ...

    def on_connect(self) -> list[BridgeMessage]: ...

    def retained(self, topic: str) -> bool: ...


@dataclass(slots=True)
class Bridges:
    """The enabled bridges of a gateway, asked together. An empty `Bridges` costs one truth test
    per commit and per published message."""

    items: list[Bridge] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.items)

    def messages(self, group: Group) -> list[BridgeMessage]:
        out: list[BridgeMessage] = []
        for bridge in self.items:
            try:
                out.extend(bridge.messages(group))
            except Exception:  # a bridge's bug must never cost the native messages of the commit
                self._failed(bridge, "messages")
        return out

    def on_connect(self) -> list[BridgeMessage]:
        out: list[BridgeMessage] = []
        for bridge in self.items:
            try:
                out.extend(bridge.on_connect())
            except Exception:
                self._failed(bridge, "on_connect")
        return out

    def retained(self, topic: str) -> bool:
        return any(bridge.retained(topic) for bridge in self.items)

    def _failed(self, bridge: Bridge, where: str) -> None:
        key = f"{bridge.name}.{where}"
        n = self.failures.get(key, 0)
        self.failures[key] = n + 1
        if n == 0:  # logged once per bridge and call site; the count is in failures
            log.exception("bridge %s failed in %s (counted, logged once)", bridge.name, where)
