"""A keyless attacker flooding a gateway's command topic, and the gateway's RSS watched meanwhile.

`Flood` publishes `rate` messages a second of `size` bytes of JSON shaped like a signed command
(claiming the test operator's key id, with a garbage signature and an `args` object of many small
members, the costliest shape to parse) from its own MQTT client, QoS 0, paced by the monotonic clock.
Used by tests/test_command_flood_process.py (a short flood) and bench/command_flood.py (5 minutes).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.commander import BASE, GATEWAY_ID, OPERATOR_ID, SITE


def flood_payload(size: int) -> bytes:
    """JSON of exactly `size` bytes that looks like a signed command until its signature is checked."""
    doc = {
        "schema": "lintel.command/1",
        "id": "c-flood",
        "gateway_id": GATEWAY_ID,
        "site": SITE,
        "command": "ping",
        "ts_ms": 0,
        "nonce": secrets.token_hex(8),
        "key_id": OPERATOR_ID,
        "sig": "A" * 86 + "==",
        "args": {},
    }
    base = len(json.dumps(doc, separators=(",", ":")))
    members: dict[str, int] = {}
    used = base
    i = 0
    while True:
        item = len(f'"k{i}":{i},') if members else len(f'"k{i}":{i}')
        if used + item > size:
            break
        members[f"k{i}"] = i
        used += item
        i += 1
    doc["args"] = members
    text = json.dumps(doc, separators=(",", ":"))
    return (text[:-2] + " " * (size - len(text)) + text[-2:]).encode()


class Flood:
    def __init__(self, port: int, rate: float, size: int, topic: str = f"{BASE}/command") -> None:
        self.rate = rate
        self.topic = topic
        self.payload = flood_payload(size)
        self.sent = 0
        self._stop = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"flood-{secrets.token_hex(3)}")
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, name="flood", daemon=True)

    def start(self) -> Flood:
        self.thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            due = start + self.sent / self.rate
            wait = due - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
                continue
            self.client.publish(self.topic, self.payload, qos=0)
            self.sent += 1

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
