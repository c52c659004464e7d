"""Sending signed commands to gateways and matching each result to its request.

The key is the operator's (or, for the web page, the service's ack-only key): it is loaded and
used here, on the machine that runs this code, and never stored in the database. Each command is
recorded in `commands` before it is published; the ingest workers fill in its result when the
gateway's `command/result` with the same correlation id arrives from the same gateway.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.types.json import Jsonb

from gateway.commands.signing import envelope, load_private_key, sign


class CommandError(Exception):
    """A command that cannot be sent (the message says why)."""


class OperatorKey:
    def __init__(self, path: Path, key_id: str | None = None) -> None:
        key, recorded = load_private_key(path)
        self.key: Ed25519PrivateKey = key
        self.key_id = key_id or recorded
        if not self.key_id:
            raise CommandError(f"{path} records no key id: give --key-id (its id in the gateways' configs)")


class Publisher:
    """One MQTT connection for outgoing commands (QoS 1, waits for the broker's PUBACK)."""

    def __init__(
        self, broker: str, client_id: str, username: str | None = None, password: str | None = None
    ) -> None:
        url = urlsplit(broker)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if url.scheme == "mqtts":
            self.client.tls_set()
        if username:
            self.client.username_pw_set(username, password)
        self._connected = threading.Event()
        self.client.on_connect = lambda *_: self._connected.set()
        self.client.connect_async(url.hostname or "127.0.0.1", url.port or 1883, 30)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> None:
        if not self._connected.wait(timeout_s):
            raise CommandError("cannot reach the broker")
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise CommandError(f"the broker did not accept the command within {timeout_s:g} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def send(
    conn: psycopg.Connection[Any],
    publisher: Publisher,
    key: OperatorKey,
    gateway_id: str,
    command: str,
    args: dict[str, Any],
    *,
    expires_s: float = 300,
    rollout_id: str | None = None,
    correlation_id: str | None = None,
) -> str:
    """Sign `command` for `gateway_id` (site and topic prefix as the gateway reported them), record
    it (committed before it is published, so a fast result always finds its request), publish it;
    return its correlation id. `conn` must be in autocommit mode."""
    row = conn.execute("SELECT site, prefix FROM gateways WHERE gateway_id = %s", (gateway_id,)).fetchone()
    if row is None:
        raise CommandError(f"no gateway {gateway_id!r} has reported to this fleet")
    site, prefix = row
    body = envelope(command, args, gateway_id=gateway_id, site=site, correlation_id=correlation_id)
    body["expires_ms"] = body["ts_ms"] + int(expires_s * 1000)
    signed = sign(body, key.key, key.key_id)
    with conn.transaction():
        conn.execute(
            "INSERT INTO commands (id, gateway_id, site, command, args, key_id, envelope, rollout_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (signed["id"], gateway_id, site, command, Jsonb(args), key.key_id, Jsonb(signed), rollout_id),
        )
    publisher.publish(f"{prefix}/{site}/{gateway_id}/command", json.dumps(signed).encode())
    return str(signed["id"])


def wait_result(conn: psycopg.Connection[Any], command_id: str, timeout_s: float) -> dict[str, Any] | None:
    """The command's result once an ingest worker has matched it, or None after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = conn.execute(
            "SELECT outcome, code, reason, result FROM commands WHERE id = %s AND outcome IS NOT NULL",
            (command_id,),
        ).fetchone()
        conn.commit()
        if row:
            return {"id": command_id, "outcome": row[0], "code": row[1], "reason": row[2], "result": row[3]}
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)
