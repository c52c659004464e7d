"""Only the key holder speaks for a keyed sensor: plaintext downgrades are refused, replays of
recorded adverts are refused (also across a gateway restart, with the counters in state.db), and a
real counter restart (battery change) is believed only after its probation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivers.ble import mibeacon
from drivers.ble.adverts import BTHOME_UUID, MIBEACON_UUID, Advert, mac_bytes
from drivers.ble.config import BleConfig
from drivers.ble.counters import PERSIST_INTERVAL_S, PERSIST_NS
from drivers.ble.decode import decode_advert
from drivers.ble.replay import ReplayGuard, RestartPolicy, Verdict
from drivers.ble.simulator import SimulatedSensor
from drivers.ble.source import BleSource
from drivers.ble.tracker import SensorTracker
from gateway.core import Event, ManualClock, MemoryStore, Reading, Record, SourceContext
from gateway.storage.state import StateStore

KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
SHELLY = "54:48:E6:8F:80:A5"
POLICY = RestartPolicy(probation_s=600, min_adverts=3, max_start=4096, max_rate_per_s=20)


def kinds(records: list[Record]) -> list[str]:
    return [r.kind if isinstance(r, Event) else f"{r.point}={r.value}" for r in records]


def door_records(records: list[Record]) -> list[Record]:
    def is_door(r: Record) -> bool:
        if isinstance(r, Reading):
            return r.point == "door_open"
        return r.kind.startswith("door_")

    return [r for r in records if is_door(r)]


def keyed_tracker(policy: RestartPolicy = POLICY) -> SensorTracker:
    return SensorTracker("door-front", SHELLY, 3600, 300, 0.0, keyed=True, guard=ReplayGuard(policy))


def feed(t: SensorTracker, advert: Advert, key: bytes | None = KEY) -> list[Record]:
    result = decode_advert(advert, mac_bytes(advert.address), key)
    assert result is not None
    return t.on_advert(advert, result, int(advert.ts * 1000))


def step(sensor: SimulatedSensor, ts: float, *, door: bool | None = None) -> Advert:
    """The sensor's next transmission (a door change when `door` is given, else a heartbeat)."""
    if door is not None:
        sensor.door_open = door
    sensor.next_packet()
    return sensor.advert(ts)


# -- downgrade ------------------------------------------------------------------------------------


def test_plaintext_advert_for_a_keyed_sensor_is_reported_once_per_episode_and_never_applied() -> None:
    t = keyed_tracker()
    shelly = SimulatedSensor(SHELLY, "SBDW-002C", KEY, counter=100)
    assert "door_open=True" in kinds(feed(t, step(shelly, 1.0, door=True)))
    # Issue 16's forgery: 4000022d00 = "window closed", no key.
    forged = Advert(SHELLY, -50, {BTHOME_UUID: bytes.fromhex("4000022d00")}, ts=2.0)
    records = feed(t, forged)
    assert kinds(records) == ["sensor_downgrade"]
    event = records[0]
    assert isinstance(event, Event) and event.severity == "warning"
    assert event.attrs == {"format": "bthome", "address": SHELLY, "encrypted": False}
    for i in range(5):
        again = Advert(SHELLY, -50, {BTHOME_UUID: bytes.fromhex(f"40000{i + 3}2d00")}, ts=3.0 + i)
        assert feed(t, again) == []
    assert t.door_open is True and t.counts["downgrades"] == 6
    # The real sensor speaks again (episode over), then another forgery: a new report.
    assert feed(t, step(shelly, 10.0)) == []
    assert kinds(feed(t, Advert(SHELLY, -50, {BTHOME_UUID: bytes.fromhex("4000092d00")}, ts=11.0))) == [
        "sensor_downgrade"
    ]
    assert t.door_open is True


def test_plaintext_mibeacon_is_a_downgrade_too_and_empty_beacons_are_only_counted() -> None:
    address = "E4:AA:EC:81:21:AE"
    key = bytes.fromhex("017e52d2684779298709b117c0a75a7b")
    t = SensorTracker("door-back", address, 3600, 300, 0.0, keyed=True)
    mac = mac_bytes(address)
    closed = mibeacon.encode(mac, 0x098B, 5, [(0x1019, b"\x01")])  # no key: plaintext
    assert kinds(feed(t, Advert(address, -60, {MIBEACON_UUID: closed}, ts=1.0), key)) == ["sensor_downgrade"]
    beacon = bytes.fromhex("1020" + "8b09" + "06") + mac[::-1]  # frame without objects
    assert feed(t, Advert(address, -60, {MIBEACON_UUID: beacon}, ts=2.0), key) == []
    assert t.counts["plaintext_empty"] == 1 and t.door_open is None


def test_an_unkeyed_sensor_still_accepts_plaintext() -> None:
    t = SensorTracker("window-1", SHELLY, 3600, 300, 0.0)
    assert "door_open=False" in kinds(
        feed(t, Advert(SHELLY, -50, {BTHOME_UUID: bytes.fromhex("4000022d00")}))
    )


# -- replay ---------------------------------------------------------------------------------------


def recorded_session(sensor: SimulatedSensor, t: SensorTracker, start: float, n: int) -> list[Advert]:
    """`n` door changes heard (and accepted) one minute apart; returns them as an attacker records."""
    adverts = []
    for i in range(n):
        advert = step(sensor, start + 60 * i, door=i % 2 == 0)
        feed(t, advert)
        adverts.append(advert)
    return adverts


@pytest.mark.parametrize("first_counter", [1, 50_000], ids=["low-counters", "high-counters"])
def test_five_replayed_adverts_with_increasing_old_counters_change_nothing(first_counter: int) -> None:
    t = keyed_tracker()
    shelly = SimulatedSensor(SHELLY, "SBDW-002C", KEY, counter=first_counter)
    recording = recorded_session(shelly, t, 1.0, 6)
    for i in range(20):  # the sensor lives on
        feed(t, step(shelly, 400.0 + i))
    state, high = t.door_open, t.guard.high
    out: list[Record] = []
    for i, advert in enumerate(recording[:5]):
        replay = Advert(advert.address, advert.rssi, advert.service_data, ts=500.0 + i)
        out += feed(t, replay)
    assert out == [] and t.door_open == state and t.guard.high == high
    assert t.counts["replays"] == 5 and "sensor_counter_reset" not in kinds(out)


def test_a_replay_between_two_copies_of_a_transmission_leaves_them_copies() -> None:
    t = keyed_tracker()
    shelly = SimulatedSensor(SHELLY, "SBDW-002C", KEY, counter=10)
    old = step(shelly, 1.0, door=True)
    feed(t, old)
    current = step(shelly, 2.0, door=False)
    assert "door_closed" in kinds(feed(t, current))
    assert feed(t, Advert(SHELLY, -60, old.service_data, ts=3.0)) == []
    assert feed(t, Advert(SHELLY, -60, current.service_data, ts=3.1)) == []  # the sensor repeats itself
    assert (t.counts["replays"], t.counts["duplicates"]) == (1, 1)


def test_a_slow_replay_is_refuted_by_the_live_sensor() -> None:
    # The attacker plays a low recording back at its own pace, past the probation; the real
    # sensor's heartbeat (its counter above the high-water mark) shows the device never restarted.
    t = keyed_tracker()
    shelly = SimulatedSensor(SHELLY, "SBDW-002C", KEY, counter=1)
    recording = recorded_session(shelly, t, 0.0, 12)
    for i in range(100):
        feed(t, step(shelly, 800.0 + i))
    out: list[Record] = []
    clock = 1000.0
    for advert in recording:
        out += feed(t, Advert(SHELLY, -60, advert.service_data, ts=clock))
        if clock >= 1000.0 + 240:
            out += feed(t, step(shelly, clock + 1))  # the real heartbeat
        clock += 60.0
    assert "sensor_counter_reset" not in kinds(out) and not door_records(out)
    assert t.guard.refuted >= 1


def test_a_fast_replay_of_a_long_low_recording_is_not_plausible() -> None:
    guard = ReplayGuard(POLICY, high=90_000)
    # 1000 counts apart but 1 s apart in time: no device transmits that fast.
    verdicts = [guard.check(100 + 1000 * i, 10.0 + i) for i in range(700)]
    assert Verdict.RESTART not in verdicts


def test_a_real_counter_restart_is_believed_after_its_probation() -> None:
    t = keyed_tracker()
    shelly = SimulatedSensor(SHELLY, "SBDW-002C", KEY, counter=70_000)
    recorded_session(shelly, t, 0.0, 3)
    # Battery change: the counter restarts at 0 and the sensor sends a heartbeat every minute.
    shelly.counter = 0
    out: list[tuple[float, list[Record]]] = []
    for minute in range(12):
        out.append((minute * 60.0, feed(t, step(shelly, 1000.0 + minute * 60, door=minute < 5))))
    held = [records for at, records in out if at < POLICY.probation_s]
    assert all(records == [] for records in held)  # nothing applied while on probation
    accepted = next(records for at, records in out if records)
    assert kinds(accepted)[:3] == ["sensor_counter_reset", "door_open=False", "door_closed"]
    reset = accepted[0]
    assert isinstance(reset, Event) and reset.attrs["previous"] == 70_003 and reset.attrs["counter"] == 11
    assert t.guard.high == 12 and t.door_open is False


def test_a_restart_from_a_high_counter_is_never_believed() -> None:
    guard = ReplayGuard(POLICY, high=900_000)
    verdicts = [guard.check(10_000 + i, 60.0 * i) for i in range(60)]
    assert set(verdicts) == {Verdict.OLD} and guard.high == 900_000


# -- persistence ----------------------------------------------------------------------------------


def source_for(key: bytes = KEY) -> BleSource:
    config = BleConfig.model_validate(
        {
            "type": "ble",
            "id": "ble-hall",
            "sensors": [{"id": "door-front", "address": SHELLY, "bindkey": key.hex()}],
        }
    )
    return BleSource(config, scanner=None)


class Run:
    """A source instance as the daemon runs it: loaded from `store`, adverts processed in order."""

    def __init__(self, store: Any, key: bytes = KEY) -> None:
        self.records: list[Record] = []
        self.ctx = SourceContext(
            "ble-hall", ManualClock(), lambda r: self.records.append(r) or True, store=store
        )
        self.source = source_for(key)
        self.source._load_sensors(0.0, store)

    def send(self, advert: Advert) -> list[Record]:
        """One advert through the consumer, which then finds its queue empty (as at real rates)."""
        before = len(self.records)
        self.source.process(self.ctx, advert)
        self.source.counters.flush(advert.ts)
        return self.records[before:]

    def stop(self) -> None:
        self.source.counters.flush(0.0, force=True)  # what run()'s finally does


def test_counters_are_saved_at_once_on_change_and_rate_limited_otherwise() -> None:
    store = MemoryStore()
    run = Run(store)
    shelly = SimulatedSensor(SHELLY, "SBDW-002C", KEY, counter=10)
    run.send(step(shelly, 1.0, door=True))
    assert store.writes == 1 and store.get(PERSIST_NS, SHELLY)["counter"] == 11
    for i in range(50):  # heartbeats: nothing changes
        run.send(step(shelly, 2.0 + i))
    assert store.writes == 1
    run.send(step(shelly, 2.0 + PERSIST_INTERVAL_S))
    assert store.writes == 2 and store.get(PERSIST_NS, SHELLY)["counter"] == 62
    run.send(step(shelly, 70.0, door=False))
    assert store.writes == 3 and store.get(PERSIST_NS, SHELLY)["counter"] == 63


def test_a_burst_costs_one_write_per_sensor() -> None:
    store = MemoryStore()
    run = Run(store)
    shelly = SimulatedSensor(SHELLY, "SBDW-002C", KEY, counter=10)
    for i in range(20):  # queued together: the consumer saves when the queue is drained
        run.source.process(run.ctx, step(shelly, 1.0 + i, door=i % 2 == 0))
    assert store.writes == 0
    run.source.counters.flush(21.0)
    assert store.writes == 1 and store.get(PERSIST_NS, SHELLY)["counter"] == 30


@pytest.mark.parametrize("clean_stop", [True, False], ids=["restart", "crash"])
def test_a_restart_then_a_replay_of_the_last_change_changes_nothing(tmp_path: Path, clean_stop: bool) -> None:
    path = tmp_path / "state.db"
    first = Run(StateStore(path))
    shelly = SimulatedSensor(SHELLY, "SBDW-002C", KEY, counter=500)
    first.send(step(shelly, 1.0, door=False))
    opened = step(shelly, 2.0, door=True)
    assert "door_opened" in kinds(first.send(opened))
    heartbeat = step(shelly, 3.0)
    first.send(heartbeat)
    if clean_stop:
        first.stop()
    first.ctx.store.close()  # type: ignore[attr-defined]

    second = Run(StateStore(path))  # the gateway restarted: new source, same state.db
    assert second.send(Advert(SHELLY, -60, opened.service_data, ts=10.0)) == []
    tracker = second.source.sensors[SHELLY].tracker
    assert tracker.counts["replays"] == 1 and tracker.door_open is None
    replayed_heartbeat = second.send(Advert(SHELLY, -60, heartbeat.service_data, ts=11.0))
    if clean_stop:
        assert replayed_heartbeat == []
    else:
        # Not saved before the crash (rate-limited): accepted, but it can only repeat the state
        # saved with the last change, which is still the truth (any later change was saved).
        assert kinds(replayed_heartbeat)[0] == "door_open=True"
    # The sensor itself is heard as ever.
    assert kinds(second.send(step(shelly, 20.0, door=False)))[0] == "door_open=False"


def test_a_new_key_starts_afresh_and_foreign_rows_are_ignored() -> None:
    store = MemoryStore()
    run = Run(store)
    shelly = SimulatedSensor(SHELLY, "SBDW-002C", KEY, counter=9000)
    run.send(step(shelly, 1.0, door=True))
    other_key = bytes(range(16))
    rekeyed = Run(store, other_key)  # the sensor was re-paired with a new key
    assert rekeyed.source.sensors[SHELLY].tracker.guard.high is None
    for junk in ("x", {"counter": "9"}, {"counter": -1}, {"counter": True}, [1, 2]):
        store.put(PERSIST_NS, SHELLY, junk)
        assert Run(store).source.sensors[SHELLY].tracker.guard.high is None


class BrokenStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    def put(self, ns: str, key: str, value: Any) -> None:
        if self.broken:
            raise OSError(28, "No space left on device")
        super().put(ns, key, value)


def test_a_failing_store_is_counted_and_the_sensor_keeps_working(caplog: pytest.LogCaptureFixture) -> None:
    store = BrokenStore()
    run = Run(store)
    shelly = SimulatedSensor(SHELLY, "SBDW-002C", KEY, counter=1)
    for i in range(4):
        assert "door_open" in kinds(run.send(step(shelly, 1.0 + i, door=i % 2 == 0)))[0]
    assert run.source.counters.counts["persist_failed"] == 4
    assert sum("cannot save replay counters" in r.getMessage() for r in caplog.records) == 1
    store.broken = False
    run.send(step(shelly, 10.0, door=True))
    assert store.get(PERSIST_NS, SHELLY)["counter"] == 6
