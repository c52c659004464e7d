"""`require = "face+tag"` for real: a door clip of the enrolled resident through `lintel run`, his
BLE fob advertising through bleak over a mocked BlueZ (a private system D-Bus), the strike on a
relay coil of a pymodbus server, events on mosquitto.

The resident (enrolled from two photos, neither the clip's; decisions on the approach, the
default) stands at the door the whole clip; a decision falls every `cooldown_s`. Before each,
the fob does one thing: advertises genuinely (granted: the coil pulses once), stays silent
(`tag_not_heard`), sends a readable advert from its address (`tag_plaintext`), plays back
recordings of its own earlier genuine adverts (`tag_replayed`), or another resident's fob is heard
instead (`tag_of_another_resident`). The fob's mode changes as soon as the test sees a decision:
the next decision is `COOLDOWN_S` later and looks back only `WINDOW_S`, so each decision sees
exactly one mode.

As in tests/test_face_access_process.py the resident "himself" is a photograph animated by a warp,
which the default `liveness = "model"` rightly refuses: this entrance runs `micro_motion`, which
the clip passes, to test the second factor on the path from a grant to the coil.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.ble import bthome
from drivers.ble.adverts import BTHOME_UUID, mac_bytes
from drivers.camera.door_scene import FACE_BOXES, DoorScene, Visit
from drivers.modbus.simulator import SimulatedMeter, SimulatedRelayModule
from gateway.lanes.faces.gallery import Gallery
from tests.conftest import gateway_toml
from tests.support.bluez import MockBluez
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.configs import door_toml, meter_bus_toml, toml_entry
from tests.support.media import photo
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel, lintel_output, stop_and_show_log, wait_status
from tests.support.schema import validate

PULSE_S = 1.0
WINDOW_S = 2.0
COOLDOWN_S = 6.0
FOB = "3C:2E:F5:0A:11:7B"
FOB_KEY = "5f1e0c2a9b7d4e3f8a6c1b2d3e4f5a6b"
OTHER_FOB = "3C:2E:F5:0A:22:9C"
OTHER_KEY = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
# (fob mode before the decision, what the decision must be)
PHASES = [
    ("genuine", "granted"),
    ("silent", "tag_not_heard"),
    ("plaintext", "tag_plaintext"),
    ("replay", "tag_replayed"),
    ("other", "tag_of_another_resident"),
]


class Fob(threading.Thread):
    """The fobs at the door: every 0.3 s one advert in the current `mode` (repeated once, as real
    tags repeat each transmission), injected into the mocked BlueZ."""

    def __init__(self, bluez: MockBluez) -> None:
        super().__init__(daemon=True)
        self.bluez = bluez
        self.mode = "genuine"
        self.counters = {FOB: 500, OTHER_FOB: 70}
        self.recorded: list[bytes] = []  # the genuine fob's adverts, as an attacker records them
        self.sent: dict[str, int] = {}
        self.halt = threading.Event()

    def _genuine(self, address: str, key: str) -> bytes:
        self.counters[address] += 1
        count = self.counters[address]
        objects = [(0x00, count & 0xFF), (0x01, 90), (0x3A, 0x01)]  # packet id, battery, a press
        return bthome.encode(objects, mac=mac_bytes(address), key=bytes.fromhex(key), counter=count)

    def _advert(self) -> tuple[str, bytes] | None:
        if self.mode == "genuine":
            data = self._genuine(FOB, FOB_KEY)
            self.recorded.append(data)
            return FOB, data
        if self.mode == "plaintext":  # what anyone can send from the fob's address
            self.counters[FOB] += 1
            return FOB, bthome.encode([(0x00, self.counters[FOB] & 0xFF), (0x01, 90), (0x3A, 0x01)])
        if self.mode == "replay":  # the recordings, in a loop (each byte-identical to a real one)
            n = self.sent.get("replay", 0)
            return FOB, self.recorded[n % len(self.recorded)]
        if self.mode == "other":
            return OTHER_FOB, self._genuine(OTHER_FOB, OTHER_KEY)
        return None

    def run(self) -> None:
        while not self.halt.is_set():
            mode = self.mode
            advert = self._advert()
            if advert is not None:
                for _ in range(2):
                    self.bluez.advertise(advert[0], BTHOME_UUID, advert[1], rssi=-55)
                self.sent[mode] = self.sent.get(mode, 0) + 1
            self.halt.wait(0.3)


@pytest.fixture
def bluez(tmp_path: Path) -> Iterator[MockBluez]:
    mock = MockBluez(tmp_path / "bluez")
    try:
        mock.start()
        mock.add_adapter("hci0")
        yield mock
    finally:
        mock.stop()


def config_text(tmp_path: Path, broker: int, modbus: int, clip: Path) -> str:
    mqtt = f'url = "mqtt://127.0.0.1:{broker}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 1\n'
    camera = {"id": "cam-door", "type": "camera", "url": str(clip), "offline_after_s": 2}
    ble = {"id": "ble-lobby", "type": "ble", "adapter": "hci0"}  # no sensors: it hears the fobs
    entrance = {
        "id": "lobby-face",
        "camera": "cam-door",
        "door": "lobby",
        "cooldown_s": COOLDOWN_S,
        "max_attempts_per_minute": 30,
        "liveness": "micro_motion",
        "require": "face+tag",
        "tag_source": "ble-lobby",
        "tag_window_s": WINDOW_S,
    }
    sources = (
        meter_bus_toml(modbus, interval_s=1)
        + "\n"
        + toml_entry("sources", camera)
        + toml_entry("sources", ble)
        + door_toml(pulse_s=PULSE_S)
        + "\n[faces]\nk = 3\nn = 5\n\n"
        + toml_entry("face_access", entrance)
    )
    return gateway_toml(tmp_path / "state", mqtt=mqtt, sources=sources, runtime={"status_interval_s": 0.3})


def decisions(collector: Collector) -> list[dict]:
    return [
        m.payload
        for m in collector.data()
        if m.topic.endswith(("/lobby-face/access_granted", "/lobby-face/access_denied"))
    ]


def test_face_and_tag_open_the_door_and_nothing_less(
    tmp_path: Path, broker: Mosquitto, bluez: MockBluez
) -> None:
    clip = DoorScene(
        [Visit(photo("faces/obama2.jpg"), FACE_BOXES["faces/obama2.jpg"], 0.3, 59.7, "live")], total_s=60
    ).write(tmp_path / "door.avi")
    relay = SimulatedRelayModule(9)
    modbus = ModbusThread([SimulatedMeter(1, "eastron_sdm120"), relay]).start()
    config = tmp_path / "lintel.toml"
    config.write_text(config_text(tmp_path, broker.port, modbus.port, clip))
    # him from two photos (two templates; the door sees a third, obama2), her from one
    for resident, pictures in (
        ("r-0412", ["faces/obama.jpg", "faces/obama3.jpg"]),
        ("r-0533", ["faces/biden.jpg"]),
    ):
        enrolled = lintel_output(
            "faces", "enroll", "-c", str(config), "--resident", resident, "--unit", "3-1202",
            "--consent", "signed form 118", *[str(photo(p)) for p in pictures],
        )  # fmt: skip
        assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    for resident, address, key in (("r-0412", FOB, FOB_KEY), ("r-0533", OTHER_FOB, OTHER_KEY)):
        key_file = tmp_path / f"{resident}.key"
        key_file.write_text(key + "\n")
        tagged = lintel_output(
            "faces", "tag", resident, "--address", address, "--bindkey-file", str(key_file), "-c", str(config)
        )
        assert tagged.returncode == 0, tagged.stdout + tagged.stderr
        key_file.unlink()  # the key now lives only sealed in the gallery
    listed = lintel_output("faces", "list", "--json", "-c", str(config))
    residents = json.loads(listed.stdout)["residents"]
    assert [(r["templates"], r["tag"]) for r in residents] == [(2, True), (1, True)]
    gallery = Gallery(tmp_path / "state" / "faces.db", tmp_path / "state" / "faces.key")
    him = gallery.pseudonym("r-0412")
    gallery.close()
    collector = Collector(broker.port, topic="lintel/site-a/gw-test/#").start()
    fob = Fob(bluez)
    proc = lintel("run", "-c", str(config), env=bluez.env())
    seen: list[dict] = []
    try:
        deadline = time.monotonic() + 30
        while not bluez.scanning():
            assert proc.poll() is None and time.monotonic() < deadline, "the daemon never started scanning"
            time.sleep(0.1)
        fob.start()  # genuine from the start: heard once the face lane has loaded the gallery
        wait_status(config, lambda s: s["lanes"].get("face_access", {}).get("residents") == 2, timeout=60)
        for i, (mode, _expected) in enumerate(PHASES):
            fob.mode = mode
            assert collector.wait_for(lambda c, n=i + 1: len(decisions(c)) >= n, 45), (
                mode,
                decisions(collector),
            )
            seen = decisions(collector)
        fob.halt.set()
        status = wait_status(config, lambda s: s["lanes"]["face_access"]["entrances"][0]["denied"] >= 4, 10)
    finally:
        fob.halt.set()
        stop_and_show_log(proc)
        collector.stop()
        modbus.stop()
    got = [("granted" if d["kind"] == "access_granted" else d["attrs"]["reason"]) for d in seen]
    assert got == [expected for _, expected in PHASES], (got, fob.sent)
    for d in seen:
        assert d["attrs"]["method"] == "face+tag" and d["attrs"]["resident_id"] == him, d
        assert d["attrs"]["liveness"] == "passed", d  # every refusal was the tag's, not the face's
    entrance = status["lanes"]["face_access"]["entrances"][0]
    assert entrance["granted"] == 1
    assert entrance["denied_reasons"] == {reason: 1 for _, reason in PHASES[1:]}
    for m in collector.data():
        if m.payload.get("kind") in ("access_granted", "access_denied", "door_pulsed"):
            validate(m.topic, m.payload)
    # the coil: off at start, one pulse for the one grant, off at stop
    assert [on for _, _coil, on in relay.switches] == [False, True, False, False], relay.switches
    assert relay.states()[0] is False
    # neither the fobs' addresses nor their keys leave the gallery: not upstream, not in state.db
    raw = json.dumps([m.payload for m in collector.data()])
    for secret in (FOB, OTHER_FOB, FOB_KEY, OTHER_KEY):
        assert secret not in raw and secret.lower() not in raw
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in (FOB, OTHER_FOB):
                assert secret.encode() not in data, f"{secret} in {path}"
            for key in (FOB_KEY, OTHER_KEY):
                assert bytes.fromhex(key) not in data and key.encode() not in data, f"a key in {path}"
