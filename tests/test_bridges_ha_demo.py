"""`lintel demo` against a real mosquitto as Home Assistant sees it: every connectivity entity the
demo announces gets a state within 10 s (issue 28: 11 of 14 stayed "unknown" for 110 s, since a
healthy device never changes and its state was published only on a change)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import ha_schema
from tests.support.broker import Mosquitto
from tests.support.process import lintel_output

DEMO_S = 16
WITHIN_S = 10.0


class TimedSubscriber:
    """Every message (topic, payload, retained) with its arrival time on the monotonic clock."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[float, str, bytes]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ha-demo-watch")
        self.client.on_connect = lambda c, *_a: (
            c.subscribe([("homeassistant/#", 1), ("lintel/#", 1)]),
            ready.set(),
        )
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(10)

    def _message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((time.monotonic(), msg.topic, bytes(msg.payload)))

    def stop(self) -> None:
        self.client.disconnect()  # first: the network thread then ends at once
        self.client.loop_stop()


def test_every_connectivity_entity_of_the_demo_has_a_state_within_10_s(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()
    sub = TimedSubscriber(broker.port)
    try:
        started = time.monotonic()
        out = lintel_output(
            "demo", "--seconds", str(DEMO_S), "--plain", "--state-dir", str(tmp_path / "demo"),
            "--broker", broker.url, timeout=DEMO_S + 100,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        with sub.lock:
            got = list(sub.got)
    finally:
        sub.stop()
        broker.stop()
    entities = {}  # state topic -> when HA learnt of the entity (its config arrived)
    for at, topic, payload in got:
        if topic.endswith("_connectivity/config") and payload:
            cfg = ha_schema.check(topic, payload)
            assert cfg["name"] == "Connectivity" and cfg["device_class"] == "connectivity"
            entities.setdefault(cfg["state_topic"], at)
    assert len(entities) >= 10, sorted(entities)  # every configured device of the demo building
    first_state: dict[str, tuple[float, bytes]] = {}
    for at, topic, payload in got:
        if topic in entities and topic not in first_state:
            first_state[topic] = (at, payload)
    missing = sorted(set(entities) - set(first_state))
    assert missing == [], missing
    late = {
        t: round(first_state[t][0] - entities[t], 1)
        for t in entities
        if first_state[t][0] - entities[t] > WITHIN_S
    }
    assert late == {}, late
    assert all(p in (b"ON", b"OFF") for _at, p in first_state.values())
    # The demo's dead meter is OFF; every other device, bus and adapter of the building is ON.
    states = {t.split("/")[4]: p for t, (_at, p) in first_state.items()}
    assert states.pop("meter-2c") == b"OFF"
    assert set(states.values()) == {b"ON"}, states
    slowest = max(at - entities[t] for t, (at, _p) in first_state.items())
    from_launch = max(at for at, _p in first_state.values()) - started
    print(f"connectivity entities {len(entities)}: slowest state {slowest:.1f} s after its config,")
    print(f"the last {from_launch:.1f} s after the demo was launched")
