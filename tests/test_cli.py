"""The CLI as a technician uses it: check-config, outbox stats/peek, status, demo."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from gateway.core import Event, Klass, Reading, SystemClock
from gateway.storage.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.upstream.encode import Encoder, Topics
from tests.conftest import gateway_toml
from tests.support import ha_schema
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.process import lintel, lintel_output, wait_status
from tests.support.schema import validate


def _config_with_outbox(tmp_path: Path) -> Path:
    config = tmp_path / "c.toml"
    config.write_text(gateway_toml(tmp_path / "state"))
    store = OutboxStore(tmp_path / "state" / "outbox.db")
    w = OutboxWriter(
        store,
        Encoder(Topics("lintel", "site-a", "gw-test")),
        SystemClock(),
        OutboxLimits(commit_window_s=0.01),
    )
    w.start()
    for i in range(30):
        w.submit(Reading("m1", "power_w", float(i), 1_700_000_000_000 + i))
    w.submit(Event("door-1", "door_forced", 1, {}, "alarm"))
    w.submit(Reading("door-1", "door_open", True, 2, klass=Klass.STATE))
    w.stop()
    return config


def test_outbox_stats_json_and_human(tmp_path: Path) -> None:
    config = _config_with_outbox(tmp_path)
    out = lintel_output("outbox", "stats", "--json", "-c", str(config))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["classes"]["telemetry"] == {
        "messages": 1,
        "records": 30,
        "bytes": data["classes"]["telemetry"]["bytes"],
        "oldest_ms": data["classes"]["telemetry"]["oldest_ms"],
    }
    assert data["classes"]["alarm"]["messages"] == 1 and data["last_seq"] == 3
    human = lintel_output("outbox", "stats", "-c", str(config))
    assert "telemetry" in human.stdout and "30" in human.stdout


def test_outbox_peek_shows_messages_in_send_order(tmp_path: Path) -> None:
    config = _config_with_outbox(tmp_path)
    out = lintel_output("outbox", "peek", "--json", "-c", str(config))
    peeked = json.loads(out.stdout)
    assert [m["class"] for m in peeked] == ["alarm", "state", "telemetry"]
    for m in peeked:
        validate(m["topic"], m["payload"])
    only = json.loads(lintel_output("outbox", "peek", "--json", "--class", "state", "-c", str(config)).stdout)
    assert [m["payload"]["point"] for m in only] == ["door_open"]


def test_outbox_commands_explain_a_missing_database(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(gateway_toml(tmp_path / "nothing-yet"))
    out = lintel_output("outbox", "stats", "-c", str(config))
    assert (
        out.returncode == 1
        and "no outbox database" in out.stderr
        and "has the gateway run yet?" in out.stderr
    )


def test_status_of_a_running_daemon(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        gateway_toml(
            tmp_path / "state",
            sources='[[sources]]\nid = "flaky"\ntype = "simulated"\n'
            "interval_s = 0.05\nfail_after_polls = 3\n",
        )
    )
    proc = lintel("run", "-c", str(config))
    try:
        status = wait_status(config, lambda s: any(c["restarts"] > 0 for c in s["components"]))
        flaky = next(c for c in status["components"] if c["name"] == "source:flaky")
        assert flaky["last_error"] is None or "no response" in flaky["last_error"]
        assert status["uplink"]["state"] == "disabled"
        human = lintel_output("status", "-c", str(config))
        assert human.returncode == 0
        for words in ("components", "source:flaky", "outbox backlog", "uplink: disabled"):
            assert words in human.stdout, human.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_status_without_a_daemon(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(gateway_toml(tmp_path / "state"))
    out = lintel_output("status", "-c", str(config))
    assert out.returncode == 3 and "not running" in out.stdout
    assert json.loads(lintel_output("status", "--json", "-c", str(config)).stdout)["running"] is False


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(gateway_toml(tmp_path / "state"))
    out = lintel_output("check-config", "-c", str(config))
    assert out.returncode == 0 and "ok" in out.stdout


# What the demo building shows once it is up: topic endings of native messages, and (prefix,
# ending) of the bridges' (Home Assistant discovery, Sparkplug B's node birth).
DEMO_SHOWS = (
    "/event/cam-court/camera_online",
    "/event/cam-lobby/camera_online",
    "/event/meter-2c/device_offline",
)
DEMO_SOURCES = {"meter-1a", "meter-1b", "meter-house", "water-1", "door-front"}
DEMO_BRIDGES = (
    ("homeassistant/binary_sensor/", "/lane-court_blocked/config"),
    ("homeassistant/event/", "/lobby-face_decision/config"),
    ("spBv1.0/demo-court/NBIRTH/", "demo-gw"),
)
DEMO_WITHIN_S = 90  # the cameras' first frames need the detector loaded: seconds idle, more under load


def counters(data: list[Any]) -> set[tuple[str, str]]:
    """(source, point) of the readings marked as counters in the telemetry received."""
    return {
        (m.payload["source_id"], r["point"])
        for m in data
        if m.topic.split("/")[3] == "telemetry"
        for r in m.payload["readings"]
        if r.get("kind") == "counter"
    }


def test_demo_publishes_a_valid_building_to_a_broker(
    tmp_path: Path, broker: Mosquitto, collector: Collector
) -> None:
    # The demo runs until the building has shown itself (both cameras online, the dead meter
    # reported, the BLE doors heard, the bridges' announcements out), then stops on SIGTERM as a
    # user's Ctrl-C would: a fixed `--seconds 4` measured the machine (on a loaded one the cameras
    # had not produced a frame in 4 s).
    def shown(c: Collector) -> bool:
        topics = {m.topic for m in c.data()}
        bridged = {t for t, _p, _r in c.bridged}
        return (
            all(any(t.endswith(end) for t in topics) for end in DEMO_SHOWS)
            and {m.payload.get("source_id") for m in c.data()} >= DEMO_SOURCES
            and {m.payload.get("source_id") for m in c.data() if m.topic.split("/")[3] == "state"}
            >= {"door-1a", "door-1b", "window-house"}
            and all(
                any(t.startswith(start) and t.endswith(end) for t in bridged) for start, end in DEMO_BRIDGES
            )
            and {("meter-1a", "energy_import_kwh"), ("water-1", "volume_m3")} <= counters(c.data())
        )

    proc = lintel("demo", "--plain", "--state-dir", str(tmp_path / "demo"), "--broker", broker.url)
    try:
        assert collector.wait_for(shown, DEMO_WITHIN_S), sorted({m.topic for m in collector.data()})
    finally:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr.decode()
    assert "demo stopped" in stdout.decode()
    data = collector.data()
    kinds = {m.topic.split("/")[3] for m in data}
    assert {"telemetry", "event", "state"} <= kinds, kinds
    for m in collector.snapshot():
        validate(m.topic, m.payload)
    sources = {m.payload["source_id"] for m in data if "source_id" in m.payload}
    assert sources >= DEMO_SOURCES
    # Modbus meters arrive decoded, counters marked; the dead unit is reported, not silent.
    assert {("meter-1a", "energy_import_kwh"), ("water-1", "volume_m3")} <= counters(data)
    offline = [m for m in data if m.topic.endswith("/event/meter-2c/device_offline")]
    assert len(offline) == 1, [m.topic for m in data if "meter-2c" in m.topic]
    # BLE doors on the simulated radio: every sensor's state arrives decoded (two of them encrypted).
    ble_states = {m.payload["source_id"] for m in data if m.topic.split("/")[3] == "state"}
    assert {"door-1a", "door-1b", "window-house"} <= ble_states, ble_states
    # The fire-lane camera plays its clip through the real driver (the detector loads in the demo).
    topics = sorted({m.topic for m in data})
    assert any(t.endswith("/event/cam-court/camera_online") for t in topics), topics
    # The lobby's face reader: its camera plays, the demo resident is enrolled (encrypted).
    assert any(t.endswith("/event/cam-lobby/camera_online") for t in topics), topics
    assert (tmp_path / "demo" / "faces.db").is_file() and (tmp_path / "demo-keys" / "faces.key").is_file()
    assert not (tmp_path / "demo" / "faces.key").exists()  # the key is not kept beside the gallery
    # The demo enables the Home Assistant bridge: every discovery config passes HA's rules, and every
    # meter point, door and fire lane of the building is announced with its class.
    configs = {t: ha_schema.check(t, p) for t, p, _r in collector.bridged if t.endswith("/config") and p}
    announced = {(t.split("/")[1], t.split("/")[3], c.get("device_class")) for t, c in configs.items()}
    # A point is announced with its first reading: the demo may stop before a door has reported at
    # all (nothing waits for one), so each point is expected exactly when its reading was published.
    published = {
        (m.payload["source_id"], r["point"])
        for m in data
        if m.topic.split("/")[3] == "telemetry"
        for r in m.payload["readings"]
    } | {(m.payload["source_id"], m.payload["point"]) for m in data if m.topic.split("/")[3] == "state"}
    assert ("meter-1a", "energy_import_kwh") in published
    for (source, point), expected in {
        ("meter-1a", "energy_import_kwh"): ("sensor", "meter-1a_energy_import_kwh", "energy"),
        ("meter-1a", "power_w"): ("sensor", "meter-1a_power_w", "power"),
        ("water-1", "volume_m3"): ("sensor", "water-1_volume_m3", "water"),
        ("door-front", "door_open"): ("binary_sensor", "door-front_door_open", "door"),
    }.items():
        if (source, point) in published:
            assert expected in announced, sorted(announced)
    for expected in (
        ("binary_sensor", "lane-court_blocked", "problem"),
        ("event", "lobby-face_decision", None),
    ):
        assert expected in announced, sorted(announced)
    # ... and the Sparkplug B bridge: the demo node is born (seq 0), its meters are devices whose
    # births name the point as a metric, and the clean stop says NDEATH with the NBIRTH's bdSeq.
    from gateway.upstream.bridges import sparkplug_pb as pb

    spb = [(t, pb.Payload.FromString(p)) for t, p, _r in collector.bridged if t.startswith("spBv1.0/")]
    node = "spBv1.0/demo-court/{}/demo-gw"
    births = [p for t, p in spb if t == node.format("NBIRTH")]
    assert births and births[0].seq == 0, [t for t, _p in spb][:10]
    bd_seq = {m.name: m.long_value for m in births[0].metrics}["bdSeq"]
    born = {(t.split("/")[4], m.name) for t, p in spb if "/DBIRTH/" in t for m in p.metrics}
    if ("meter-1a", "energy_import_kwh") in published:
        assert ("meter-1a", "energy_import_kwh") in born, sorted(born)
    deaths = [p for t, p in spb if t == node.format("NDEATH")]
    assert [m.long_value for m in deaths[-1].metrics] == [bd_seq]


def test_demo_without_a_broker_buffers_locally(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    out = lintel_output("demo", "--seconds", "3", "--plain", "--state-dir", str(state), timeout=60)
    assert out.returncode == 0, out.stderr
    assert "no broker (buffering locally)" in out.stdout.replace("\n", " ")
    last = out.stdout.strip().splitlines()[-1]
    backlog = int(last.rsplit("outbox backlog ", 1)[1].split()[0])
    assert backlog > 0
    # The demo follows its own rules: no warning about a file it placed itself (its face gallery
    # key was once kept in the state folder, beside the gallery, which the gateway warns about).
    own = [line for line in out.stderr.splitlines() if " WARNING " in line and str(tmp_path) in line]
    assert own == [], own
    assert (tmp_path / "demo-keys" / "faces.key").is_file()


def test_the_demo_adopts_the_key_an_older_demo_left_in_its_state_folder(tmp_path: Path) -> None:
    from gateway.cli.demo_building import adopt_old_demo_key, demo_key_path

    state = tmp_path / "demo"
    state.mkdir()
    (state / "faces.key").write_bytes(b"k" * 32)
    key = demo_key_path(state)
    assert key == tmp_path / "demo-keys" / "faces.key"
    assert adopt_old_demo_key(state, key)
    assert key.read_bytes() == b"k" * 32 and not (state / "faces.key").exists()
    (state / "faces.key").write_bytes(b"n" * 32)  # a key is already there: never overwritten
    assert not adopt_old_demo_key(state, key)
    assert key.read_bytes() == b"k" * 32


def test_every_command_and_action_reaches_a_handler() -> None:
    """The dispatch table names real functions for every command the parser accepts, and no
    command the parser does not accept (a handler's module is imported only when it runs, so a
    typo in the table would otherwise show only when a technician types that command)."""
    import argparse

    from gateway.cli.main import HANDLERS, build_parser, handler

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    reached = set()
    for command, parser in commands.choices.items():
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for chosen in actions[0].choices if actions else [None]:
            args = argparse.Namespace(command=command, **{f"{command}_command": chosen})
            run = handler(args)
            assert callable(run) and run.__name__.startswith("cmd_"), (command, chosen)
            reached.add(f"{run.__module__}:{run.__name__}")
    assert reached == set(HANDLERS.values())
    assert {name.split()[0] for name in HANDLERS} <= set(commands.choices)
