"""A subscriber that records everything a gateway publishes, for counting by (gateway_id, seq)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass
class Received:
    topic: str
    payload: dict[str, Any]
    retain: bool


@dataclass
class Collector:
    port: int
    topic: str = "#"
    tls: dict[str, Any] | None = None
    auth: tuple[str, str] | None = None
    persistent: bool = False  # keep the session (and queued messages) across broker restarts
    messages: list[Received] = field(default_factory=list)
    # Bridge messages (docs/bridges.md): not native JSON, kept raw as (topic, payload, retain).
    bridged: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._subscribed = threading.Event()  # the broker's SUBACK: from then on nothing is missed
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"collector-{id(self)}", clean_session=not self.persistent
        )
        self.client.reconnect_delay_set(0.05, 0.5)
        if self.tls:
            self.client.tls_set(**self.tls)
        if self.auth:
            self.client.username_pw_set(*self.auth)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(self.topic, qos=1)
        self._connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/command"):
            return  # inbound commands (operators, fuzzers) are not the gateway's output
        parts = msg.topic.split("/")
        if len(parts) < 4 or parts[3] == "ha" or parts[0] in ("homeassistant", "spBv1.0"):
            with self._lock:
                self.bridged.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            return
        item = Received(msg.topic, json.loads(msg.payload), bool(msg.retain))
        with self._lock:
            self.messages.append(item)

    def start(self) -> Collector:
        self.client.connect("127.0.0.1", self.port, 30)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise TimeoutError("collector could not connect")
        if not self._subscribed.wait(10):  # before the test publishes or starts a gateway
            raise TimeoutError(f"collector's subscription to {self.topic} was not acknowledged")
        return self

    def stop(self) -> None:
        # DISCONNECT first: the network thread then ends at once; stopped first, it sat out its
        # 1 s select timeout (0.8 s per collector measured, in almost every process test)
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def data(self) -> list[Received]:
        """Messages that carry a data seq (not birth/status)."""
        return [m for m in self.snapshot() if m.payload.get("schema", "").split("/")[0] not in BOOKKEEPING]

    def seqs(self) -> set[int]:
        return {m.payload["seq"] for m in self.data()}

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)


BOOKKEEPING = {"lintel.birth", "lintel.status"}
