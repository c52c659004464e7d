"""Face access for real: a door clip composited from registry photographs, through `lintel run`,
to a relay coil on a pymodbus server and events on mosquitto. A stranger is denied; a still
photograph of the resident and then a phone screen showing him are refused (liveness) and the
relay is not touched; the resident "himself" opens the door once, for the pulse time;
`faces_delete` over MQTT removes him, and the same face is then denied.

The project has no genuine face video (docs/face-calibration.md): the "resident himself" is a
photograph animated by a local warp, which the default `liveness = "model"` rightly refuses as an
attack (tests/test_face_pad_process.py). This entrance therefore runs `liveness = "micro_motion"`,
which that clip passes, to test the door's path from a grant to the coil."""

from __future__ import annotations

import json
import time
from pathlib import Path

from drivers.camera.door_scene import FACE_BOXES, DoorScene, Visit
from drivers.modbus.simulator import SimulatedMeter, SimulatedRelayModule
from gateway.lanes.faces.gallery import Gallery
from gateway.storage.state import StateStore, state_path
from tests.conftest import gateway_toml
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.commander import Commander, envelope, operator_toml
from tests.support.configs import door_toml, meter_bus_toml
from tests.support.media import photo
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel, lintel_output, stop_and_show_log, wait_status
from tests.support.schema import validate

PULSE_S = 1.0


def visit(name: str, start: float, end: float, motion: str = "live", screen: bool = False) -> Visit:
    return Visit(photo(name), FACE_BOXES[name], start, end, motion, screen)


def denied_after_grant(messages: list) -> bool:
    """An unknown face denied after the grant (the resident, once deleted)."""
    kinds = [m.payload.get("kind") for m in messages if "/lobby-face/" in m.topic]
    return "access_granted" in kinds and "access_denied" in kinds[kinds.index("access_granted") :]


def config_text(tmp_path: Path, broker: int, modbus: int, clip: Path) -> str:
    mqtt = f'url = "mqtt://127.0.0.1:{broker}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 1\n'
    sources = (
        meter_bus_toml(modbus, interval_s=1)
        + f"""
[[sources]]
id = "cam-door"
type = "camera"
url = "{clip}"
offline_after_s = 2
"""
        + door_toml(pulse_s=PULSE_S)
        + f"""
[faces]
k = 3
n = 5

[[face_access]]
id = "lobby-face"
camera = "cam-door"
door = "lobby"
cooldown_s = 4
max_attempts_per_minute = 20
liveness = "micro_motion"

[commands]
allow = ["ping", "faces_delete"]
clock_sync = "assume"  # test machines run no time daemon: trust the clock

{operator_toml(["faces_delete"])}
"""
    )
    return gateway_toml(tmp_path / "state", mqtt=mqtt, sources=sources, runtime={"status_interval_s": 0.3})


def test_resident_opens_the_door_and_a_stranger_does_not(tmp_path: Path, broker: Mosquitto) -> None:
    # a stranger, a printed photo of the resident, his photo on a phone, the resident himself
    # (deleted meanwhile), him again; 2.5 s of empty hallway between visits (> the 2 s reset)
    clip = DoorScene(
        [
            visit("faces/biden.jpg", 0.5, 5),
            visit("faces/obama2.jpg", 7.5, 12.5, motion="still"),
            visit("faces/obama3.jpg", 15, 20, motion="still", screen=True),
            visit("faces/obama2.jpg", 22.5, 27),
            visit("faces/obama3.jpg", 29.5, 34),
        ],
        total_s=36,
    ).write(tmp_path / "door.avi")
    wall_minus_mono = time.time() - time.monotonic()
    relay = SimulatedRelayModule(9)
    modbus = ModbusThread([SimulatedMeter(1, "eastron_sdm120"), relay]).start()
    config = tmp_path / "lintel.toml"
    config.write_text(config_text(tmp_path, broker.port, modbus.port, clip))
    enrolled = lintel_output(
        "faces", "enroll", "-c", str(config), "--resident", "r-0412", "--unit", "3-1202",
        "--consent", "signed form 118", "--door", "lobby", str(photo("faces/obama.jpg")),
    )  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    gallery = Gallery(tmp_path / "state" / "faces.db", tmp_path / "state" / "faces.key")
    him = gallery.pseudonym("r-0412")  # what events, results and state.db call him
    gallery.close()
    assert him.startswith("p-") and len(him) == 18
    collector = Collector(broker.port, topic="lintel/site-a/gw-test/#").start()
    commander = Commander(broker.port)
    # the door's answer time is the gateway's: it runs as the one program on its Pi would (own_cpu)
    proc = lintel("run", "-c", str(config), own_cpu=True)
    try:
        wait_status(config, lambda s: s["lanes"].get("face_access", {}).get("residents") == 1, timeout=30)
        assert collector.wait_for(
            lambda c: any(m.topic.endswith("/lobby-face/access_granted") for m in c.data()), 40
        ), [m.topic for m in collector.data()]
        time.sleep(PULSE_S + 1)
        result = commander.call(envelope("faces_delete", {"resident_id": "r-0412"}))
        assert result["outcome"] == "ok", result
        assert result["result"] == {"resident": him, "templates_deleted": 1, "purged": True}
        again = commander.call(envelope("faces_delete", {"resident_id": "r-0412"}))
        assert again["outcome"] == "rejected" and "unknown resident" in again["reason"]
        # the deleted resident's face must now be refused as unknown
        assert collector.wait_for(lambda c: denied_after_grant(c.data()), 40)
        status = wait_status(config, lambda s: s["lanes"].get("face_access", {}).get("residents") == 0, 5)
        assert status["lanes"]["face_access"]["entrances"][0]["granted"] == 1
        shown = lintel_output("status", "-c", str(config)).stdout
        assert "face access: 0 residents" in shown and "lobby-face on cam-door → door lobby" in shown, shown
    finally:
        stopping_at = time.monotonic()
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
    granted = kinds.index("access_granted")
    grant_ts_ms = next(m.payload["ts_ms"] for m in collector.data() if m.topic.endswith("/access_granted"))
    assert kinds.count("access_granted") == 1 and kinds[granted + 1] == "door_pulsed", events
    stranger, *spoofs = (a for _, a in events[:granted])
    grant, pulse, deleted, *_later = (a for _, a in events[granted:])
    assert stranger["reason"] == "unknown_face" and stranger["resident_id"] is None
    assert stranger["distance"] > 1.128
    # the photograph and the phone screen: recognised as him, refused by liveness
    assert len(spoofs) >= 2, [(k, a.get("reason"), a.get("liveness"), a.get("distance")) for k, a in events]
    for spoof in spoofs:
        assert spoof["reason"] == "liveness_failed" and spoof["resident_id"] == him, spoof
        assert spoof["liveness"] == "failed" and spoof["liveness_check"] == "micro_motion"
    assert grant["resident_id"] == him and grant["method"] == "face" and grant["door"] == "lobby"
    assert grant["liveness"] == "passed" and grant["liveness_check"] == "micro_motion"
    assert grant["distance"] < 1.0 and grant["margin"] is None and grant["frames"] >= 3
    assert grant["latency_ms"] < 3000
    # after the deletion his face (still at the door, or back at 29.5 s) is a stranger's: denied
    assert {k for k, _ in events[granted + 2 :]} == {"access_denied"}, events
    assert not any(isinstance(v, str) and "obama" in v.lower() for v in grant.values())
    assert pulse["via"] == "face" and pulse["resident_id"] == him
    assert deleted["reason"] == "unknown_face"
    # the coil: switched off at start and at stop (doors contract), on once for the pulse time in
    # between; untouched by the stranger and the deleted face. (A switch-off may be written twice:
    # its answer late on a busy machine, the door tries again, by design: off is idempotent.)
    switches = [(t, on) for t, _coil, on in relay.switches]
    ons = [i for i, (_t, on) in enumerate(switches) if on]
    assert len(ons) == 1 and ons[0] > 0, switches  # one on, and an off (at start) before it
    on_at, off_at = switches[ons[0]][0], switches[ons[0] + 1][0]
    assert any(t >= stopping_at for t, _on in switches[ons[0] + 1 :]), "no switch-off at stop"
    on_s = off_at - on_at
    assert PULSE_S - 0.05 <= on_s <= PULSE_S + 0.6
    # switched on within 1 s of the grant: the decision's own time (wall clock, in the event) against
    # the relay's (monotonic, on this same machine), not when the test happened to read the event
    switched_on_ms = (on_at + wall_minus_mono) * 1000
    assert -20 < switched_on_ms - grant_ts_ms < 1000, switched_on_ms - grant_ts_ms  # (-20: ms rounding)
    assert relay.states()[0] is False
    for m in collector.data():
        if m.payload.get("kind") in ("access_granted", "access_denied", "door_pulsed"):
            validate(m.topic, m.payload)
    # the grant's anti-passback record went with the resident
    store = StateStore(state_path(tmp_path / "state"), read_only=True)
    assert store.load("face_access") == {}
    store.close()
    # Issue 27 point 7: after enrolment, a grant and faces delete, the resident id, the unit number
    # and the consent text are in no file under the state dir (database, WAL, free pages, status,
    # outbox) and in no message upstream (the pseudonym is, in the grant's events).
    secrets_ = {"resident id": b"r-0412", "unit": b"3-1202", "consent": b"signed form 118"}
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.name == "faces.db" for p in files) and any(p.name == "outbox.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for what, text in secrets_.items():
            assert text not in data and text.decode().encode("utf-16-le") not in data, f"{what} in {path}"
    raw = json.dumps([m.payload for m in collector.data()])
    for what, text in secrets_.items():
        assert text.decode() not in raw, f"{what} upstream"
    assert him in raw
