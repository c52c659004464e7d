"""A keyless attacker flooding a gateway's command topic, and the gateway's RSS watched meanwhile.

`Flood` publishes `rate` messages a second of `size` bytes of JSON shaped like a signed command
(claiming the test operator's key id, with a garbage signature and an `args` object of many small
members, the costliest shape to parse) from its own process and MQTT client, QoS 0, paced by the
monotonic clock.
Used by tests/test_command_flood_process.py (a short flood) and bench/command_flood.py (5 minutes).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.commander import BASE, GATEWAY_ID, OPERATOR_ID, SITE

ROOT = Path(__file__).resolve().parents[2]


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
    """The attacker, in a process of its own (as on a machine of its own): its 30 MB/s of publishing
    never competes for the test's interpreter lock with the keyholder's client it is timed against.
    `sent` is known after `stop()`."""

    def __init__(self, port: int, rate: float, size: int, topic: str = f"{BASE}/command") -> None:
        self.port, self.rate, self.size, self.topic = port, rate, size, topic
        self.sent = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Flood:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.flood",
                str(self.port),
                str(self.rate),
                str(self.size),
                self.topic,
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "flooding", "the flood did not connect"
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        self.sent = int(out.split()[-1])
        self.proc = None


def flood(port: int, rate: float, size: int, topic: str) -> int:
    """Publish `rate` messages a second until SIGTERM; returns how many were sent."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    payload = flood_payload(size)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"flood-{secrets.token_hex(3)}")
    client.connect("127.0.0.1", port, 30)
    client.loop_start()
    print("flooding", flush=True)
    sent = 0
    start = time.monotonic()
    while not stop.is_set():
        wait = start + sent / rate - time.monotonic()
        if wait > 0:
            stop.wait(wait)
            continue
        client.publish(topic, payload, qos=0)
        sent += 1
    client.disconnect()  # before loop_stop, which otherwise waits out paho's 1 s select
    client.loop_stop()
    return sent


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    port, rate, size, topic = sys.argv[1:5]
    print(f"sent {flood(int(port), float(rate), int(size), topic)}", flush=True)
