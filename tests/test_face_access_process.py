"""Face access for real: a door clip composited from registry photographs, through `lintel run`,
to a relay coil on a pymodbus server and events on mosquitto. A stranger is denied and the relay
is not touched; the enrolled resident (enrolled from a different photo) opens the door once, for
the pulse time; `faces_delete` over MQTT removes him, and the same face is then denied."""

from __future__ import annotations

import json
import time
from pathlib import Path

from drivers.camera.door_scene import FACE_BOXES, DoorScene, Visit
from drivers.modbus.simulator import SimulatedMeter, SimulatedRelayModule
from gateway.state import StateStore, state_path
from tests.conftest import gateway_toml
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.commander import Commander, envelope, operator_toml
from tests.support.media import photo
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel, lintel_output, stop_and_show_log, wait_status
from tests.support.schema import validate

PULSE_S = 1.0


def visit(name: str, start: float, end: float) -> Visit:
    return Visit(photo(name), FACE_BOXES[name], start, end)


def config_text(tmp_path: Path, broker: int, modbus: int, clip: Path) -> str:
    mqtt = f'url = "mqtt://127.0.0.1:{broker}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 1\n'
    sources = f"""
[[sources]]
id = "bus-1"
type = "modbus"
endpoint = "tcp://127.0.0.1:{modbus}"
interval_s = 1

[[sources.meters]]
id = "m1"
unit = 1
profile = "eastron_sdm120"
read = ["power_w"]

[[sources]]
id = "cam-door"
type = "camera"
url = "{clip}"
offline_after_s = 2

[[doors]]
id = "lobby"
pulse_s = {PULSE_S}

[doors.relay]
type = "modbus_coil"
bus = "bus-1"
unit = 9
coil = 0

[faces]
k = 3
n = 5

[[face_access]]
id = "lobby-face"
camera = "cam-door"
door = "lobby"
cooldown_s = 30

[commands]
allow = ["ping", "faces_delete"]

{operator_toml(["faces_delete"])}
"""
    text = gateway_toml(tmp_path / "state", mqtt=mqtt, sources=sources)
    return text.replace("[outbox]", "[runtime]\nstatus_interval_s = 0.3\n\n[outbox]")


def test_resident_opens_the_door_and_a_stranger_does_not(tmp_path: Path, broker: Mosquitto) -> None:
    # a stranger 1-6 s, nobody, the resident 9-15 s (deleted meanwhile), nobody, him again 24-30 s
    clip = DoorScene(
        [
            visit("faces/biden.jpg", 1, 6),
            visit("faces/obama2.jpg", 9, 15),
            visit("faces/obama3.jpg", 24, 30),
        ],
        total_s=33,
    ).write(tmp_path / "door.avi")
    relay = SimulatedRelayModule(9)
    modbus = ModbusThread([SimulatedMeter(1, "eastron_sdm120"), relay]).start()
    config = tmp_path / "lintel.toml"
    config.write_text(config_text(tmp_path, broker.port, modbus.port, clip))
    enrolled = lintel_output(
        "faces", "enroll", "-c", str(config), "--resident", "r-0412", "--unit", "3-1202",
        "--consent", "signed form 118", "--door", "lobby", str(photo("faces/obama.jpg")),
    )  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    collector = Collector(broker.port, topic="lintel/site-a/gw-test/#").start()
    commander = Commander(broker.port)
    proc = lintel("run", "-c", str(config))
    try:
        wait_status(config, lambda s: s["lanes"].get("face_access", {}).get("residents") == 1, timeout=30)
        assert collector.wait_for(
            lambda c: any(m.topic.endswith("/lobby-face/access_granted") for m in c.data()), 40
        ), [m.topic for m in collector.data()]
        granted_at = time.monotonic()
        time.sleep(PULSE_S + 1)
        result = commander.call(envelope("faces_delete", {"resident_id": "r-0412"}))
        assert result["outcome"] == "ok", result
        assert result["result"] == {"resident_id": "r-0412", "templates_deleted": 1, "purged": True}
        again = commander.call(envelope("faces_delete", {"resident_id": "r-0412"}))
        assert again["outcome"] == "rejected" and "unknown resident" in again["reason"]
        # the deleted resident's face must now be refused as unknown
        assert collector.wait_for(
            lambda c: len([m for m in c.data() if m.topic.endswith("/lobby-face/access_denied")]) >= 2, 40
        )
        status = wait_status(config, lambda s: s["lanes"].get("face_access", {}).get("residents") == 0, 5)
        assert status["lanes"]["face_access"]["entrances"][0]["granted"] == 1
        shown = lintel_output("status", "-c", str(config)).stdout
        assert "face access: 0 residents" in shown and "lobby-face on cam-door → door lobby" in shown, shown
    finally:
        stop_and_show_log(proc)
        collector.stop()
        commander.close()
        modbus.stop()
    events = [
        (m.payload["kind"], m.payload["attrs"])
        for m in collector.data()
        if "/lobby-face/" in m.topic or m.topic.endswith("/lobby/door_pulsed")
    ]
    kinds = [k for k, _ in events]
    # after the deletion his face (still at the door, or back at 24 s) is a stranger's: denied
    assert kinds[:3] == ["access_denied", "access_granted", "door_pulsed"], events
    assert len(kinds) >= 4 and set(kinds[3:]) == {"access_denied"}, events
    stranger, grant, pulse, deleted = (a for _, a in events[:4])
    assert stranger["reason"] == "unknown_face" and stranger["resident_id"] is None
    assert stranger["distance"] > 0.6
    assert grant["resident_id"] == "r-0412" and grant["method"] == "face" and grant["door"] == "lobby"
    assert grant["distance"] < 0.5 and grant["margin"] is None and grant["frames"] == 3
    assert grant["latency_ms"] < 3000
    assert not any(isinstance(v, str) and "obama" in v.lower() for v in grant.values())
    assert pulse["via"] == "face" and pulse["resident_id"] == "r-0412"
    assert deleted["reason"] == "unknown_face"
    # the coil: switched off at start and at stop (doors contract), on once for the pulse time in
    # between; untouched by the stranger and the deleted face
    assert [on for _, coil, on in relay.switches] == [False, True, False, False]
    on_s = relay.switches[2][0] - relay.switches[1][0]
    assert PULSE_S - 0.05 <= on_s <= PULSE_S + 0.6
    assert abs(relay.switches[1][0] - granted_at) < 1.0
    assert relay.states()[0] is False
    for m in collector.data():
        if m.payload.get("kind") in ("access_granted", "access_denied", "door_pulsed"):
            validate(m.topic, m.payload)
    # the grant's anti-passback record went with the resident
    store = StateStore(state_path(tmp_path / "state"), read_only=True)
    assert "r-0412" not in store.load("face_access")
    store.close()
    raw = json.dumps([m.payload for m in collector.data()])
    assert "3-1202" not in raw and "signed form" not in raw  # ids and numbers only go upstream
