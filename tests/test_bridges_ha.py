"""The Home Assistant bridge: discovery payloads checked against HA's discovery rules
(tests/support/ha_schema.py), templates rendered by Jinja2 (HA's template engine) on real native
payloads, removal of entities that left the config, and a real mosquitto run through the outbox."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import jinja2
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.core import Event, Klass, Reading
from gateway.storage.outbox import OutboxLimits
from gateway.storage.outbox.messages import build_messages
from gateway.storage.outbox.schema import TABLES
from gateway.upstream.bridges import Bridges, Group, HomeAssistantBridgeConfig, Inventory
from gateway.upstream.bridges.home_assistant import HomeAssistantBridge
from gateway.upstream.encode import Encoder
from tests.support import ha_schema
from tests.support.broker import Mosquitto
from tests.support.harness import TOPICS, InProcessGateway
from tests.support.proxy import CuttableProxy

NODE = "lintel_site-a_gw-test"
INV = Inventory(
    site="site-a",
    gateway_id="gw-test",
    version="test",
    devices=(("meter-1", "modbus"), ("water-1", "modbus"), ("door-1", "ble"), ("cam-1", "camera")),
    fire_lanes=("lane-n",),
    entrances=("entrance-a",),
)
T = 1_795_400_000_000


def _bridge(tmp_path: Path, inv: Inventory = INV) -> HomeAssistantBridge:
    return HomeAssistantBridge(HomeAssistantBridgeConfig(enabled=True), TOPICS, inv, tmp_path / "ha.json")


def _records() -> list[Reading | Event]:
    return [
        Reading("meter-1", "energy_import_kwh", 1234.5, T, counter=True),
        Reading("meter-1", "power_w", 412.3, T),
        Reading("meter-1", "voltage_v", 230.1, T),
        Reading("meter-1", "current_a", 1.8, T),
        Reading("water-1", "volume_m3", 12.345, T, counter=True),
        Reading("door-1", "door_open", True, T, klass=Klass.STATE),
        Reading("door-1", "battery_pct", 97, T),
        Event("lane-n", "fire_lane_blocked", T, {"dwell_s": 200, "alarm_id": "a1"}, "alarm"),
        Event("entrance-a", "access_granted", T, {"door": "d1", "resident_id": "r-17", "distance": 0.3}),
        Event("door-1", "device_offline", T, {"reason": "silent"}, "warning"),
    ]


def _configs(messages: list[Any]) -> dict[str, dict[str, Any]]:
    return {
        m.topic: ha_schema.check(m.topic, m.payload) for m in messages if m.topic.startswith("homeassistant/")
    }


def test_every_discovery_payload_passes_ha_rules_with_the_right_classes_and_units(tmp_path: Path) -> None:
    bridge = _bridge(tmp_path)
    connect = _configs(bridge.on_connect())
    first = bridge.messages(Group(_records(), (), T))
    dynamic = _configs(first)
    assert all(m.retain and m.klass == Klass.EVENT for m in first if m.topic.startswith("homeassistant/"))
    expected = {  # (component, device_class, unit, state_class): HA's view of each point
        "meter-1_energy_import_kwh": ("sensor", "energy", "kWh", "total_increasing"),
        "meter-1_power_w": ("sensor", "power", "W", "measurement"),
        "meter-1_voltage_v": ("sensor", "voltage", "V", "measurement"),
        "meter-1_current_a": ("sensor", "current", "A", "measurement"),
        "water-1_volume_m3": ("sensor", "water", "m³", "total_increasing"),
        "door-1_door_open": ("binary_sensor", "door", None, None),
        "door-1_battery_pct": ("sensor", "battery", "%", "measurement"),
    }
    got = {
        t.split("/")[3]: (
            t.split("/")[1],
            c.get("device_class"),
            c.get("unit_of_measurement"),
            c.get("state_class"),
        )
        for t, c in dynamic.items()
    }
    assert got == expected
    for cfg in [*dynamic.values(), *connect.values()]:
        assert cfg["availability"][0]["topic"] == "lintel/site-a/gw-test/status"
        dev = cfg["device"]
        assert (
            dev["identifiers"] == [NODE] or dev["via_device"] == NODE
        )  # one device per device, via the gateway
    kinds = {t.split("/")[1] + "/" + t.split("/")[3] for t in connect}
    assert {
        "binary_sensor/lane-n_blocked",
        "event/entrance-a_decision",
        "binary_sensor/door-1_connectivity",
    } <= kinds
    assert {"sensor/outbox_backlog", "sensor/uplink", "sensor/last_seen", "sensor/open_alarms"} <= kinds
    uids = [c["unique_id"] for c in [*dynamic.values(), *connect.values()]]
    assert len(uids) == len(set(uids))
    states = {m.topic: m for m in first if not m.topic.startswith("homeassistant/")}
    lane = json.loads(states["lintel/site-a/gw-test/ha/lane-n/fire_lane"].payload)
    assert (lane["state"], lane["dwell_s"]) == ("ON", 200)
    access = states["lintel/site-a/gw-test/ha/entrance-a/access"]
    assert not access.retain and json.loads(access.payload) == {
        "event_type": "access_granted",
        "ts_ms": T,
        "door": "d1",
    }
    assert states["lintel/site-a/gw-test/ha/door-1/connectivity"].payload == b"OFF"
    # seen once: a second commit with the same points announces nothing again
    again = bridge.messages(Group(_records()[:7], (), T + 1000))
    assert [m for m in again if m.topic.startswith("homeassistant/")] == []


def _render(template: str, payload: bytes) -> str:
    env = jinja2.Environment(undefined=jinja2.Undefined, autoescape=False)
    env.filters["tojson"] = lambda v: json.dumps(v)
    return env.from_string(template).render(value_json=json.loads(payload), value=payload.decode()).strip()


def test_value_templates_pick_the_newest_good_reading_from_native_payloads(tmp_path: Path) -> None:
    bridge = _bridge(tmp_path)
    configs = _configs(bridge.messages(Group(_records(), (), T)))
    enc = Encoder(TOPICS)
    readings = [
        Reading("meter-1", "power_w", 400.0, T),
        Reading("meter-1", "voltage_v", 229.0, T),
        Reading("meter-1", "power_w", 401.5, T + 1000),
        Reading("meter-1", "power_w", 999.0, T + 2000, quality="bad"),
    ]
    _topic, telemetry = enc.telemetry(7, T, "meter-1", readings)
    power = configs[f"homeassistant/sensor/{NODE}/meter-1_power_w/config"]
    assert power["state_topic"] == "lintel/site-a/gw-test/telemetry/meter-1"
    assert _render(power["value_template"], telemetry) == "401.5"
    energy = configs[f"homeassistant/sensor/{NODE}/meter-1_energy_import_kwh/config"]
    assert _render(energy["value_template"], telemetry) == ""  # not in this message: HA keeps its state
    door = configs[f"homeassistant/binary_sensor/{NODE}/door-1_door_open/config"]
    for value, want in ((True, "ON"), (False, "OFF")):
        topic, state = enc.state(8, Reading("door-1", "door_open", value, T, klass=Klass.STATE))
        assert topic == door["state_topic"] and _render(door["value_template"], state) == want
    _t, uncertain = enc.state(
        9, Reading("door-1", "door_open", True, T, quality="uncertain", klass=Klass.STATE)
    )
    assert _render(door["value_template"], uncertain) == ""
    status = enc.status(9, T, "offline")
    assert _render(power["availability"][0]["value_template"], status) == "offline"


def test_open_alarms_show_as_a_count_with_kinds_from_the_stats_message(tmp_path: Path) -> None:
    configs = _configs(_bridge(tmp_path).on_connect())
    sensor = configs[f"homeassistant/sensor/{NODE}/open_alarms/config"]
    assert "entity_category" not in sensor  # shown with the building's entities, not under diagnostics
    open_alarms = {"count": 2, "unacknowledged": 1, "by_kind": {"fire_lane_blocked": 1, "inactivity": 1}}
    topic, stats = Encoder(TOPICS).stats(3, T, {"uptime_s": 5.0, "open_alarms": open_alarms})
    assert topic == sensor["state_topic"] == sensor["json_attributes_topic"]
    assert _render(sensor["value_template"], stats) == "2"
    assert json.loads(_render(sensor["json_attributes_template"], stats)) == open_alarms


def test_entities_of_devices_that_left_the_config_are_removed(tmp_path: Path) -> None:
    _bridge(tmp_path).messages(Group(_records(), (), T))
    smaller = Inventory("site-a", "gw-test", "test", devices=(("meter-1", "modbus"),))
    later = _bridge(tmp_path, smaller).on_connect()
    empty = {m.topic for m in later if m.payload == b""}
    kept = {m.topic for m in later if m.payload}
    assert all(m.retain for m in later)
    assert f"homeassistant/sensor/{NODE}/water-1_volume_m3/config" in empty
    assert f"homeassistant/binary_sensor/{NODE}/door-1_door_open/config" in empty
    assert f"homeassistant/binary_sensor/{NODE}/lane-n_blocked/config" in empty
    assert f"homeassistant/event/{NODE}/entrance-a_decision/config" in empty
    assert f"homeassistant/sensor/{NODE}/meter-1_power_w/config" in kept  # still configured: kept
    assert not empty & kept
    # a third start remembers the removals (a connection may have dropped before they went out)
    assert empty <= {m.topic for m in _bridge(tmp_path, smaller).on_connect() if m.payload == b""}


class RawSubscriber:
    def __init__(self, port: int, topic: str = "#") -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{id(self)}")
        self.client.on_message = self._msg
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _msg(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((m.topic, bytes(m.payload), bool(m.retain)))

    def wait(self, predicate: Any, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.got)):
                    return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        self.client.disconnect()  # first: the network thread then ends at once
        self.client.loop_stop()


def test_through_the_outbox_to_a_real_broker_retained_and_complete(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)
    broker.start()
    bridges = Bridges([_bridge(tmp_path)])
    gw = InProcessGateway(tmp_path / "outbox.db", broker.port, bridges=bridges)
    sub = RawSubscriber(broker.port)
    try:
        gw.writer.start()
        for r in _records():
            gw.writer.submit(r)
        assert gw.writer.flush()
        db = sqlite3.connect(tmp_path / "outbox.db")
        rows = [
            row
            for table in TABLES.values()
            for row in db.execute(f"SELECT seq, topic, records, native_seq FROM {table}")
        ]
        db.close()
        bridge_rows = [r for r in rows if r[1].startswith(("homeassistant/", "lintel/site-a/gw-test/ha/"))]
        assert bridge_rows and all(r[2] == 0 for r in bridge_rows)  # the native message counts the record
        assert sum(r[2] for r in rows) == len(_records())
        assert sorted(r[0] for r in rows) == list(range(1, gw.writer.last_row + 1))  # one row seq per row
        # native messages alone take native seqs, without a hole; bridge rows take none
        assert sorted(r[3] for r in rows if r[2]) == list(range(1, gw.writer.last_seq + 1))
        assert all(r[3] is None for r in bridge_rows)
        gw.uplink.start()
        assert gw.wait_drained(30), gw.uplink.report()
        last = gw.writer.last_row
        assert sub.wait(lambda got: {r[1] for r in rows} <= {t for t, _p, _r in got})
        # A subscriber that comes later (Home Assistant restarting) gets the retained configs and states
        late = RawSubscriber(broker.port, "homeassistant/#")
        assert late.wait(lambda got: len(got) >= len(bridge_rows) - 2)
        with late.lock:
            retained = {t: p for t, p, r in late.got if r}
        for topic, payload in retained.items():
            ha_schema.check(topic, payload)
        assert f"homeassistant/sensor/{NODE}/meter-1_energy_import_kwh/config" in retained
        assert f"homeassistant/binary_sensor/{NODE}/lane-n_blocked/config" in retained
        late.stop()
        gw.stop()
        gw = None  # type: ignore[assignment]
        assert sub.wait(lambda got: any(t == TOPICS.status and b'"offline"' in p for t, p, _r in got))
        assert last > len(_records())
    finally:
        sub.stop()
        if gw is not None:
            gw.stop()
        broker.stop()


def test_a_retained_state_from_the_backlog_never_overwrites_a_newer_live_one(tmp_path: Path) -> None:
    """After an outage the backlog drains behind live messages: an older retained connectivity
    state still in the backlog is superseded (acknowledged unsent), so HA keeps the newer one."""
    broker = Mosquitto(tmp_path)
    broker.start()
    proxy = CuttableProxy(broker.port)
    proxy.cut(refuse_s=3600)
    bridges = Bridges([_bridge(tmp_path)])
    gw = InProcessGateway(
        tmp_path / "o.db",
        proxy.port,
        OutboxLimits(commit_window_s=0.02),
        bridges=bridges,
        drain_rate_msg_s=50,
    ).start()
    topic = "lintel/site-a/gw-test/ha/door-1/connectivity"
    sub = RawSubscriber(broker.port, "lintel/#")
    try:
        for i in range(150):  # the backlog: 1 s of draining at 50 msg/s ahead of the offline event
            gw.writer.submit(Event("meter-1", "door_opened", T + i, {"i": i}))
        gw.writer.submit(Event("door-1", "device_offline", T + 200, {"reason": "silent"}, "warning"))
        assert gw.writer.flush()
        proxy.cut(refuse_s=0)
        assert sub.wait(lambda got: any(t.endswith("/birth") for t, _p, _r in got), 10)
        gw.writer.submit(Event("door-1", "device_online", T + 300, {}))  # live, newer
        assert gw.wait_drained(30)
        assert sub.wait(lambda got: any(t == topic for t, _p, _r in got))
        with sub.lock:
            states = [p for t, p, _r in sub.got if t == topic]
            backlog_left = any(t.endswith("/event/meter-1/door_opened") for t, _p, _r in sub.got[-5:])
        # The state at connect (OFF, sent with the configs), then the live ON; the backlog's own OFF
        # row, older than both, was superseded: it never followed the ON.
        assert states == [b"OFF", b"ON"], states
        assert backlog_left or len(sub.got) > 100  # the live one really overtook a backlog
        late = RawSubscriber(broker.port, topic)
        assert late.wait(lambda got: got == [(topic, b"ON", True)])
        late.stop()
    finally:
        sub.stop()
        gw.stop()
        proxy.close()
        broker.stop()


class _Broken:
    name = "broken"

    def messages(self, group: Group) -> list[Any]:
        raise ValueError("a bug in a bridge")

    def on_connect(self) -> list[Any]:
        raise ValueError("a bug in a bridge")

    def retained(self, topic: str) -> bool:
        return False


def test_a_failing_bridge_costs_no_native_message_and_is_counted(tmp_path: Path) -> None:
    bridges = Bridges([_Broken(), _bridge(tmp_path)])
    rows = build_messages(list(_records()), Encoder(TOPICS, bridges), 10, 10, T, 500)
    native = build_messages(list(_records()), Encoder(TOPICS), 10, 10, T, 500)
    assert [r[2:] for r in rows[: len(native)]] == [r[2:] for r in native]  # native first, unchanged
    assert len(rows) > len(native)  # the working bridge still added its messages
    assert [r.seq for r in rows] == list(range(11, 11 + len(rows)))
    rows2 = build_messages(list(_records()), Encoder(TOPICS, bridges), 0, 0, T, 500)
    assert len(rows2) >= len(native)
    assert bridges.on_connect()  # the healthy bridge's configs, despite the broken one
    assert bridges.failures == {"broken.messages": 2, "broken.on_connect": 1}


def test_a_restart_announces_no_point_again(tmp_path: Path) -> None:
    first = _bridge(tmp_path).messages(Group(_records(), (), T))
    assert any(m.topic.endswith("meter-1_power_w/config") for m in first)
    again = _bridge(tmp_path).messages(Group(_records(), (), T + 1))  # a new process, same state file
    assert [m.topic for m in again if m.topic.endswith("/config")] == []


def test_entity_names_carry_no_unit_suffix(tmp_path: Path) -> None:
    # Issue 28: names were the point with spaces ("battery pct", "energy import kwh"); HA shows the
    # unit beside the value, so the name is the words only, capitalised as HA's own names are.
    bridge = _bridge(tmp_path)
    records = [
        *_records(),
        Reading("meter-1", "voltage_l1_v", 230.0, T),
        Reading("door-1", "rssi_dbm", -70, T),
    ]
    names = {t.split("/")[3]: c["name"] for t, c in _configs(bridge.messages(Group(records, (), T))).items()}
    assert names == {
        "meter-1_energy_import_kwh": "Energy import",
        "meter-1_power_w": "Power",
        "meter-1_voltage_v": "Voltage",
        "meter-1_current_a": "Current",
        "water-1_volume_m3": "Volume",
        "door-1_door_open": "Door open",
        "door-1_battery_pct": "Battery",
        "meter-1_voltage_l1_v": "Voltage L1",
        "door-1_rssi_dbm": "RSSI",
    }
    connect = {t.split("/")[3]: c["name"] for t, c in _configs(bridge.on_connect()).items()}
    assert connect["door-1_connectivity"] == "Connectivity" and connect["outbox_backlog"] == "Outbox backlog"
    # A config remembered from before (old name) is republished with today's name.
    state = json.loads((tmp_path / "ha.json").read_text())
    topic = next(t for t in state["announced"] if t.endswith("door-1_battery_pct/config"))
    cfg = json.loads(state["announced"][topic][2])
    state["announced"][topic][2] = json.dumps({**cfg, "name": "battery pct"})
    (tmp_path / "ha.json").write_text(json.dumps(state))
    again = {m.topic: json.loads(m.payload) for m in _bridge(tmp_path).on_connect() if m.topic == topic}
    assert again[topic]["name"] == "Battery"


def test_connectivity_is_published_at_the_first_record_at_every_change_and_on_connect(tmp_path: Path) -> None:
    # Issue 28: connectivity went out only on a change, so every healthy device stayed "unknown".
    bridge = _bridge(tmp_path)

    def links(messages: list[Any]) -> list[tuple[str, bytes]]:
        assert all(m.retain for m in messages if m.topic.endswith("/connectivity"))
        return [(m.topic.split("/")[4], m.payload) for m in messages if m.topic.endswith("/connectivity")]

    assert links(bridge.on_connect()) == []  # nothing heard yet: HA keeps its retained state
    first = bridge.messages(
        Group([Reading("meter-1", "power_w", 1.0, T), Reading("meter-1", "voltage_v", 2.0, T)], (), T)
    )
    assert links(first) == [("meter-1", b"ON")]  # once, at its first record
    assert links(bridge.messages(Group([Reading("meter-1", "power_w", 1.5, T + 1)], (), T + 1))) == []
    never_heard = Event("door-1", "device_offline", T + 2, {"reason": "silent"}, "warning")
    camera = Event("cam-1", "camera_online", T + 2, {})
    assert links(bridge.messages(Group([never_heard, camera], (), T + 2))) == [
        ("door-1", b"OFF"),
        ("cam-1", b"ON"),
    ]
    assert links(bridge.messages(Group([Event("cam-1", "camera_online", T + 3, {})], (), T + 3))) == []
    lost = Event("meter-1", "device_offline", T + 4, {"reason": "timeout"}, "warning")
    assert links(bridge.messages(Group([lost], (), T + 4))) == [("meter-1", b"OFF")]
    back = Event("meter-1", "device_online", T + 5, {})
    assert links(bridge.messages(Group([back, Reading("meter-1", "power_w", 3.0, T + 5)], (), T + 5))) == [
        ("meter-1", b"ON")
    ]
    # Every connection republishes each known state (retained), beside the configs.
    assert sorted(links(bridge.on_connect())) == [("cam-1", b"ON"), ("door-1", b"OFF"), ("meter-1", b"ON")]
    # Records of sources that are not configured devices (a lane, an entrance) have no connectivity.
    lane = Event("lane-n", "fire_lane_blocked", T + 6, {"dwell_s": 1}, "alarm")
    assert links(bridge.messages(Group([lane], (), T + 6))) == []


def test_records_dropped_counts_records_not_the_sparkplug_bridges_rows() -> None:
    from gateway.upstream.bridges.ha_discovery import RECORDS_DROPPED

    stats = {
        "outbox": {
            "dropped": {"telemetry.class_full": 5, "telemetry.sparkplug_class_full": 7, "event.expired": 2}
        }
    }
    assert _render(RECORDS_DROPPED, json.dumps(stats).encode()) == "7"
    assert _render(RECORDS_DROPPED, json.dumps({"outbox": {"dropped": {}}}).encode()) == "0"
