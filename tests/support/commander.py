"""Sends commands to a gateway over MQTT and collects their results, as an operator's backend would."""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

BASE = "lintel/site-a/gw-test"


def envelope(command: str, args: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema": "lintel.command/1",
        "id": f"c-{secrets.token_hex(4)}",
        "command": command,
        "ts_ms": time.time_ns() // 1_000_000,
        "nonce": secrets.token_hex(8),
        "args": args or {},
    }
    body.update(fields)
    return body


class Commander:
    def __init__(self, port: int, base: str = BASE) -> None:
        self.base = base
        self.results: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"operator-{secrets.token_hex(3)}")
        self.client.on_connect = lambda c, *_: (
            c.subscribe(f"{base}/command/result", qos=1),
            self._ready.set(),
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise TimeoutError("commander could not connect")
        time.sleep(0.1)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.results.append(json.loads(msg.payload))

    def send_raw(self, payload: bytes) -> None:
        self.client.publish(f"{self.base}/command", payload, qos=1).wait_for_publish(5)

    def send(self, body: dict[str, Any]) -> None:
        self.send_raw(json.dumps(body).encode())

    def result_for(self, correlation_id: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [r for r in self.results if r.get("correlation_id") == correlation_id]
            if found:
                return found[-1]
            time.sleep(0.02)
        raise TimeoutError(f"no result for {correlation_id}")

    def call(self, body: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        self.send(body)
        return self.result_for(body["id"], timeout)

    def count(self) -> int:
        with self._lock:
            return len(self.results)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
