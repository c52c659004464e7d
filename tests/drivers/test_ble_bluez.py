"""bleak for real, without a radio: a private system D-Bus with a mocked bluetoothd.

Adverts go in the way bluetoothd reports them (new Device1 objects, then PropertiesChanged); door
events come out of `lintel run` at a real mosquitto, and out of the installer tools.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.ble.adverts import BTHOME_UUID
from drivers.ble.simulator import SimulatedSensor
from tests.support.bluez import MockBluez
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.configs import source_toml
from tests.support.process import lintel
from tests.support.schema import validate
from tests.test_process import write_config

XIAOMI_KEY = "017e52d2684779298709b117c0a75a7b"
SHELLY_KEY = "231d39c1d7cc1ab1aee224cd096db932"


@pytest.fixture(params=[False, True], ids=["active-fallback", "passive"])
def bluez(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MockBluez]:
    mock = MockBluez(tmp_path / "bluez", passive=request.param)
    try:
        mock.start()  # stops what it started if it fails
        mock.add_adapter("hci0")
        yield mock
    finally:
        mock.stop()  # also when adding the adapter failed: no dbus-daemon or dbusmock left behind


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
    sensors = [
        {"id": "door-front", "address": "54:48:E6:8F:80:A5", "model": "SBDW-002C", "bindkey": SHELLY_KEY},
        {"id": "door-back", "address": "E4:AA:EC:81:21:AE", "model": "MCCGQ02HL", "bindkey_file": key_file},
        {"id": "window-1", "address": "58:2D:34:40:3A:4D", "model": "CGH1"},
    ]
    sources = source_toml("ble", "ble-hall", "sensors", sensors, adapter="hci0")
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


def test_a_mock_that_fails_to_start_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support import bluez as bluez_support

    monkeypatch.setattr(bluez_support, "TEMPLATE", tmp_path / "no-such-template.py")
    mock = MockBluez(tmp_path / "bluez")
    with pytest.raises(RuntimeError, match="dbusmock did not start"):
        mock.start()
    assert mock._daemon is not None and mock._mock is not None
    assert mock._daemon.poll() is not None and mock._mock.poll() is not None  # both gone


# -- authentic adverts, done-when of issue 16: real bleak, mocked BlueZ, state.db ----------------


class LiveSource:
    """The BLE source as the daemon runs it (bleak scanner, SourceContext with state.db), in-process."""

    def __init__(self, state_db: Path, scanning: str) -> None:
        from drivers.ble.config import BleConfig
        from drivers.ble.scanner import BleakAdvertScanner
        from drivers.ble.source import BleSource
        from gateway.core import SourceContext, SystemClock
        from gateway.storage.state import StateStore

        config = BleConfig.model_validate(
            {
                "type": "ble",
                "id": "ble-hall",
                "sensors": [{"id": "door-front", "address": FRONT, "bindkey": SHELLY_KEY}],
            }
        )
        self.store = StateStore(state_db)
        self.records: list[Any] = []
        self.source = BleSource(config, BleakAdvertScanner("hci0", scanning))
        ctx = SourceContext(
            "ble-hall", SystemClock(), lambda r: self.records.append(r) or True, store=self.store
        )
        self.task = asyncio.create_task(self.source.run(ctx))

    def door(self) -> list[str]:
        """What the door did, as published: door_open readings and door_* events, in order."""
        out = []
        for r in self.records:
            if getattr(r, "point", None) == "door_open":
                out.append(f"door_open={r.value}")
            elif getattr(r, "kind", "").startswith("door_"):
                out.append(r.kind)
        return out

    def kinds(self) -> list[str]:
        return [r.kind for r in self.records if hasattr(r, "kind")]

    @property
    def counts(self) -> Any:
        return self.source.sensors[FRONT].tracker.counts

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert not self.task.done(), self.task
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.store.close()


FRONT = "54:48:E6:8F:80:A5"


def test_forged_and_replayed_adverts_leave_the_door_alone_across_a_restart(
    bluez: MockBluez, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bluez.address)
    scanning = "passive" if bluez.passive else "active"
    state_db = tmp_path / "state.db"
    sensor = SimulatedSensor(FRONT, "SBDW-002C", bytes.fromhex(SHELLY_KEY), counter=100)

    async def air(data: bytes) -> None:  # one advert on the (mocked) radio
        await asyncio.to_thread(bluez.advertise, FRONT, BTHOME_UUID, data, rssi=-60)

    async def transmit(door: bool) -> bytes:
        sensor.door_open = door
        sensor.next_packet()
        data = sensor.service_data()[1]
        await air(data)
        return data

    async def scenario() -> None:
        live = LiveSource(state_db, scanning)
        await live.until(lambda: bluez.scanning(), "scanning")
        recorded = [await transmit(i % 2 == 1) for i in range(6)]  # closed, open, ... open
        changes = [["door_open=True", "door_opened"], ["door_open=False", "door_closed"]] * 3
        expected = ["door_open=False"] + [r for change in changes[:5] for r in change]
        await live.until(lambda: len(live.door()) >= len(expected), "the door records")
        before = live.door()
        assert before == expected

        # 1. Downgrade: issue 16's plaintext "window closed" from the sensor's address, no key.
        for _ in range(3):
            await air(bytes.fromhex("4000022d00"))
        await live.until(lambda: live.counts["downgrades"] == 3, "three downgrades")
        assert live.door() == before and live.kinds().count("sensor_downgrade") == 1

        # 2. Replay of 5 recorded adverts with increasing old counters.
        for data in recorded[:5]:
            await air(data)
        await live.until(lambda: live.counts["replays"] == 5, "five replays")
        assert live.door() == before and "sensor_counter_reset" not in live.kinds()
        await live.stop()

        # 3. The gateway restarts (new source, same state.db); the last accepted advert is replayed.
        again = LiveSource(state_db, scanning)
        await again.until(lambda: bluez.scanning(), "scanning again")
        await air(recorded[-1])
        await again.until(lambda: again.counts["replays"] >= 1, "the replay")
        await transmit(False)  # the real sensor: heard, so the replay above was heard and refused
        await again.until(lambda: again.door() != [], "the real advert")
        assert again.door() == ["door_open=False"]
        await again.stop()

    asyncio.run(scenario())
