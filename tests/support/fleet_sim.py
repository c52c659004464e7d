"""Simulated gateways for the fleet tests and bench/fleet_load.py: schema-v1 traffic built with the
gateway's own encoder (gateway.upstream.encode), published over a real broker, QoS 1.

A `SimGateway` keeps its seq like a gateway does (one per data message, never backwards);
`Sender` publishes for any number of them on one MQTT 5 connection with a persistent session, so
a broker restart loses nothing it accepted, and records which seqs the broker acknowledged.
The broker and the fleet's processes: tests/support/fleet_procs.py.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.core import Event, Reading
from gateway.upstream.encode import Encoder, Topics

ROOT = Path(__file__).resolve().parents[2]
METER_POINTS = [
    "energy_import_kwh",
    "energy_export_kwh",
    "power_w",
    "voltage_v",
    "current_a",
    "power_factor",
    "frequency_hz",
    "reactive_power_var",
]


@dataclass
class SimGateway:
    gateway_id: str
    site: str
    meters: int = 20
    sensors: int = 10
    prefix: str = "lintel"
    seq: int = 0
    rng: random.Random = field(default_factory=random.Random)
    alarm_id: int = 0

    def __post_init__(self) -> None:
        self.encoder = Encoder(Topics(self.prefix, self.site, self.gateway_id))

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def birth(self, now_ms: int, version: str = "0.1.0") -> tuple[str, bytes, int | None]:
        body = {
            "versions": {"lintel": version},
            "config_sha256": "ab" * 32,
            "boot_reason": "first_start",
            "started_ms": now_ms,
            "backlog_until_seq": self.seq,
            "outbox": {"rows": {}, "bytes": {}, "dropped": {}},
            "clock_set": True,
        }
        return self.encoder.topics.birth, self.encoder.birth(self.seq, now_ms, body), None

    def status(self, now_ms: int, state: str = "online") -> tuple[str, bytes, int | None]:
        return self.encoder.topics.status, self.encoder.status(self.seq, now_ms, state), None

    def meter_telemetry(self, now_ms: int) -> list[tuple[str, bytes, int | None]]:
        out = []
        for m in range(self.meters):
            readings = [
                Reading(f"meter-{m}", p, round(self.rng.uniform(0, 500), 3), now_ms) for p in METER_POINTS
            ]
            seq = self._next()
            out.append((*self.encoder.telemetry(seq, now_ms, f"meter-{m}", readings), seq))
        return out

    def sensor_telemetry(self, now_ms: int) -> list[tuple[str, bytes, int | None]]:
        out = []
        for s in range(self.sensors):
            readings = [
                Reading(f"sensor-{s}", "temperature_c", round(self.rng.uniform(15, 25), 2), now_ms),
                Reading(f"sensor-{s}", "battery_pct", 90, now_ms),
            ]
            seq = self._next()
            out.append((*self.encoder.telemetry(seq, now_ms, f"sensor-{s}", readings), seq))
        return out

    def alarm(self, now_ms: int, kind: str = "threshold_exceeded") -> tuple[str, bytes, int | None]:
        self.alarm_id += 1
        ev = Event(
            f"meter-{self.alarm_id % max(self.meters, 1)}",
            kind,
            now_ms,
            {"alarm_id": str(self.alarm_id), "notify": 1, "rule": "r1"},
            "alarm",
        )
        seq = self._next()
        return (*self.encoder.event(seq, ev), seq)

    def event(
        self, now_ms: int, kind: str, attrs: dict[str, Any], source: str = "gateway", severity: str = "info"
    ) -> tuple[str, bytes, int | None]:
        seq = self._next()
        return (*self.encoder.event(seq, Event(source, kind, now_ms, attrs, severity)), seq)  # type: ignore[arg-type]

    def stats(
        self, now_ms: int, dropped: dict[str, int] | None = None, offline: int = 0
    ) -> tuple[str, bytes, int | None]:
        devices = [
            {
                "device_id": f"meter-{m}",
                "source_id": "bus-1",
                "kind": "meter",
                "online": m >= offline,
                "last_seen_ms": now_ms,
                "offline_since_ms": None,
                "counters": {},
                "errors": 0,
                "points": [],
            }
            for m in range(self.meters)
        ]
        body = {
            "uptime_s": 60,
            "boot_reason": "first_start",
            "components": [],
            "outbox": {"last_seq": self.seq, "rows": {}, "bytes": {}, "dropped": dropped or {}},
            "devices": devices,
            "open_alarms": {"count": 0, "unacknowledged": 0, "by_kind": {}},
        }
        seq = self._next()
        return (*self.encoder.stats(seq, now_ms, body), seq)


class Sender:
    """Publishes (topic, payload, seq) triples QoS 1 on one persistent MQTT 5 session; `acked`
    holds, per gateway, the seqs the broker acknowledged (what the fleet must then have)."""

    def __init__(self, port: int, client_id: str = "fleet-sim", max_inflight: int = 1000) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self.acked: dict[str, set[int]] = defaultdict(set)
        self.published = 0
        self._pending: dict[int, tuple[str, int | None]] = {}
        self._early: set[int] = set()
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client.on_connect = lambda *_: self._connected.set()
        self.client.on_disconnect = lambda *_: self._connected.clear()
        self.client.on_publish = self._on_publish
        self.client.reconnect_delay_set(0.1, 2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async("127.0.0.1", port, 30, clean_start=False, properties=props)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise TimeoutError("the simulator could not connect to the broker")

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        # paho calls this holding its own lock: never publish while holding ours (see send)
        with self._lock:
            item = self._pending.pop(mid, None)
            if item is None:
                self._early.add(mid)  # acknowledged before send() could note it
            elif item[1] is not None:
                self.acked[item[0]].add(item[1])

    def send(self, gateway_id: str, topic: str, payload: bytes, seq: int | None) -> None:
        info = self.client.publish(topic, payload, qos=1)
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                if seq is not None:
                    self.acked[gateway_id].add(seq)
            else:
                self._pending[info.mid] = (gateway_id, seq)
        self.published += 1

    def outstanding(self) -> int:
        with self._lock:
            return len(self._pending)

    def drain(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while self.outstanding() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.outstanding():
            raise TimeoutError(f"{self.outstanding()} messages never acknowledged by the broker")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
