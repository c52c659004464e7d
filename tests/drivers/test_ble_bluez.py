"""bleak for real, without a radio: a private system D-Bus with a mocked bluetoothd.

Adverts go in the way bluetoothd reports them (new Device1 objects, then PropertiesChanged); door
events come out of `lintel run` at a real mosquitto, and out of the installer tools.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.ble.simulator import SimulatedSensor
from tests.support.bluez import MockBluez
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.process import lintel
from tests.support.schema import validate
from tests.test_process import write_config

XIAOMI_KEY = "017e52d2684779298709b117c0a75a7b"
SHELLY_KEY = "231d39c1d7cc1ab1aee224cd096db932"


@pytest.fixture(params=[False, True], ids=["active-fallback", "passive"])
def bluez(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MockBluez]:
    mock = MockBluez(tmp_path / "bluez", passive=request.param).start()
    try:
        mock.add_adapter("hci0")
        yield mock
    finally:
        mock.stop()


def wait_scanning(bluez: MockBluez, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not bluez.scanning():
        assert time.monotonic() < deadline, "nobody started scanning"
        time.sleep(0.05)


def send(bluez: MockBluez, sensor: SimulatedSensor) -> None:
    uuid, data = sensor.service_data()
    bluez.advertise(sensor.address, uuid, data, rssi=sensor.rssi, name=sensor.name or "")


def test_adverts_in_door_events_out_of_the_daemon(
    bluez: MockBluez, tmp_path: Path, broker: Mosquitto, collector: Collector
) -> None:
    key_file = tmp_path / "door-back.key"
    key_file.write_text(XIAOMI_KEY + "\n")
    sources = f"""
[[sources]]
id = "ble-hall"
type = "ble"
adapter = "hci0"

[[sources.sensors]]
id = "door-front"
address = "54:48:E6:8F:80:A5"
model = "SBDW-002C"
bindkey = "{SHELLY_KEY}"

[[sources.sensors]]
id = "door-back"
address = "E4:AA:EC:81:21:AE"
model = "MCCGQ02HL"
bindkey_file = "{key_file}"

[[sources.sensors]]
id = "window-1"
address = "58:2D:34:40:3A:4D"
model = "CGH1"
"""
    config = write_config(tmp_path, broker.url, sources)
    daemon = lintel("run", "-c", str(config), env=bluez.env())
    front = SimulatedSensor("54:48:E6:8F:80:A5", "SBDW-002C", bytes.fromhex(SHELLY_KEY), name="SBDW-002C")
    back = SimulatedSensor("E4:AA:EC:81:21:AE", "MCCGQ02HL", bytes.fromhex(XIAOMI_KEY))
    window = SimulatedSensor("58:2D:34:40:3A:4D", "CGH1")
    stranger = SimulatedSensor("AA:BB:CC:DD:EE:FF", "SBDW-002C")
    try:
        # Wait until the daemon scans, then play three doors.
        deadline = time.monotonic() + 30
        while not bluez.scanning():
            assert daemon.poll() is None and time.monotonic() < deadline, "daemon never started scanning"
            time.sleep(0.1)
        for sensor in (front, back, window, stranger):
            send(bluez, sensor)
        cycles = 3
        for _ in range(cycles):
            for sensor in (front, back, window):
                sensor.door_open = not sensor.door_open
                sensor.next_packet()
                send(bluez, sensor)
                send(bluez, sensor)  # real sensors repeat each transmission
            time.sleep(0.1)

        def door_events(c: Collector) -> list[tuple[str, str]]:
            return [
                (m.payload["source_id"], m.payload["kind"])
                for m in c.data()
                if m.topic.split("/")[3] == "event" and m.payload.get("kind", "").startswith("door_")
            ]

        expected = 3 * cycles
        assert collector.wait_for(lambda c: len(door_events(c)) >= expected, 30), door_events(collector)
        time.sleep(0.5)
        events = door_events(collector)
        assert len(events) == expected  # repeats deduplicated, nothing lost
        for sensor_id in ("door-front", "door-back", "window-1"):
            assert [k for s, k in events if s == sensor_id] == ["door_opened", "door_closed", "door_opened"]
        states = [m for m in collector.data() if m.topic.split("/")[3] == "state"]
        assert {m.payload["source_id"] for m in states} == {"door-front", "door-back", "window-1"}
        assert not any("AA:BB:CC" in str(m.payload) for m in collector.data())
        for m in collector.snapshot():
            validate(m.topic, m.payload)
    finally:
        daemon.terminate()
        daemon.wait(15)


def test_ble_scan_lists_nearby_sensors(bluez: MockBluez) -> None:
    import subprocess
    import sys

    from tests.support.process import ROOT

    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "ble", "scan", "--seconds", "4", "--json"],
        cwd=ROOT,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT), **bluez.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_scanning(bluez)
    door = SimulatedSensor("3C:2E:F5:00:00:01", "SBDW-002C", door_open=True, name="SBDW-002C")
    xiaomi = SimulatedSensor("E4:AA:EC:81:21:AE", "MCCGQ02HL", bytes.fromhex(XIAOMI_KEY))
    send(bluez, door)
    send(bluez, xiaomi)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    import json

    rows = {row["address"]: row for row in json.loads(out)}
    assert rows["3C:2E:F5:00:00:01"]["format"] == "bthome"
    assert rows["3C:2E:F5:00:00:01"]["state"] == {"battery_pct": 97, "window": True}
    assert rows["3C:2E:F5:00:00:01"]["encrypted"] is False
    assert rows["E4:AA:EC:81:21:AE"]["encrypted"] is True
    assert rows["E4:AA:EC:81:21:AE"]["model"] == "MCCGQ02HL"


@pytest.mark.parametrize(("key", "verdict", "code"), [(XIAOMI_KEY, "key OK", 0), ("00" * 16, "wrong key", 1)])
def test_check_key_says_whether_the_key_decrypts(
    bluez: MockBluez, tmp_path: Path, key: str, verdict: str, code: int
) -> None:
    import os
    import subprocess
    import sys

    from tests.support.process import ROOT

    key_file = tmp_path / "k.key"
    key_file.write_text(key)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "ble", "check-key", "E4:AA:EC:81:21:AE", str(key_file),
         "--timeout", "20"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **bluez.env()},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_scanning(bluez)
    send(bluez, SimulatedSensor("E4:AA:EC:81:21:AE", "MCCGQ02HL", bytes.fromhex(XIAOMI_KEY)))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, out + err
    assert verdict in out
