"""Sends commands to a gateway over MQTT and collects their results, as an operator's backend would.

Commands are signed with the test operator key (`OPERATOR_ID`) at the moment they are sent, so a
test may change an envelope after building it (drop its nonce, date it back) and still send a
correctly signed command; `send_raw` sends bytes as they are. `operator_toml` is the config snippet
that lists this key.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.commands.signing import new_key, public_key_b64, sign

BASE = "lintel/site-a/gw-test"
GATEWAY_ID, SITE = "gw-test", "site-a"
OPERATOR_ID = "warden-2"
OPERATOR_KEY = new_key()  # one per test session: nothing secret is kept in the repository


def operator_toml(allow: list[str], doors: list[str] | None = None, key_id: str = OPERATOR_ID) -> str:
    """`[[commands.operators]]` for the test key (goes after the `[commands]` table)."""
    lines = [
        "[[commands.operators]]",
        f'id = "{key_id}"',
        f'public_key = "{public_key_b64(OPERATOR_KEY)}"',
        f"allow = {json.dumps(allow)}",
    ]
    if doors:
        lines.append(f"doors = {json.dumps(doors)}")
    return "\n".join(lines) + "\n"


def envelope(command: str, args: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema": "lintel.command/1",
        "id": f"c-{secrets.token_hex(4)}",
        "gateway_id": GATEWAY_ID,
        "site": SITE,
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
        self._subscribed = threading.Event()  # the SUBACK of the result topic: no result is missed
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"operator-{secrets.token_hex(3)}")
        self.client.on_connect = lambda c, *_: (
            c.subscribe(f"{base}/command/result", qos=1),
            self._ready.set(),
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise TimeoutError("commander could not connect")
        if not self._subscribed.wait(10):
            raise TimeoutError("commander's subscription to the results was not acknowledged")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.results.append(json.loads(msg.payload))

    def send_raw(self, payload: bytes) -> None:
        self.client.publish(f"{self.base}/command", payload, qos=1).wait_for_publish(5)

    def send(self, body: dict[str, Any], signed: bool = True) -> None:
        """Publish `body`, signed with the test operator key unless `signed` is False."""
        self.send_raw(json.dumps(sign(body, OPERATOR_KEY, OPERATOR_ID) if signed else body).encode())

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
        self.client.disconnect()  # first: the network thread ends at once (see Collector.stop)
        self.client.loop_stop()
