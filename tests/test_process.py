"""`lintel run` as a real process: kill -9, SIGTERM, systemd notifications, a corrupt outbox."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import gateway_toml
from tests.support import row_log
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.configs import Table
from tests.support.notify import NotifySocket
from tests.support.outbox_db import assert_intact, last_seq, meta, scalar
from tests.support.process import kill_9_while_committing, lintel, lintel_output, wait_status
from tests.support.proxy import CuttableProxy
from tests.support.schema import validate

LOAD_SOURCES = """
[[sources]]
id = "load-1"
type = "simulated"
profile = "load"
points = 100
interval_s = 0.05

[[sources]]
id = "door-1"
type = "simulated"
profile = "door_sensor"
interval_s = 0.1
alarm_probability = 0.2
"""


def write_config(
    tmp_path: Path,
    mqtt_url: str | None,
    sources: str = LOAD_SOURCES,
    runtime: Table | None = None,
    outbox: Table | None = None,
) -> Path:
    mqtt = (
        f'url = "{mqtt_url}"\nstats_interval_s = 1\nreconnect_initial_s = 0.2\nreconnect_max_s = 1\n'
        if mqtt_url
        else ""
    )
    text = gateway_toml(
        tmp_path / "state",
        mqtt=mqtt,
        sources=sources,
        outbox={"commit_window_ms": 50, "batch_max_readings": 50, **(outbox or {})},
        runtime={"status_interval_s": 0.3, **(runtime or {})},
    )
    path = tmp_path / "lintel.toml"
    path.write_text(text)
    return path


# Sparkplug at QoS 1 (its documented option): every DDATA row must reach the broker, as checked below
BOTH_BRIDGES = "\n[bridges.home_assistant]\nenabled = true\n\n[bridges.sparkplug]\nenabled = true\nqos = 1\n"


KILLS = 3  # per configuration in the suite; `python -m bench.kill9` runs many more


@dataclass(frozen=True)
class KillRun:
    """What a kill -9 run counted (`kill_9_run`)."""

    accepted: int  # the last seq the outbox accepted before the draining start
    gaps: int  # seqs up to the last received that never arrived
    dropped: int  # native_seqs_dropped in the last stats
    duplicates: int  # messages received more than once
    crash_births: int  # births saying boot_reason "crash"
    bridge_rows: int  # Sparkplug DDATA rows in the outbox (0 without bridges)


def kill_9_run(
    tmp_path: Path, broker: Mosquitto, collector: Collector, bridges: str, kills: int, rng: random.Random
) -> KillRun:
    """`lintel run` under load killed -9 `kills` times (the outbox passes SQLite's integrity check
    after each), then started once more to drain: waits until every accepted seq (and, with the
    bridges, every Sparkplug DDATA row) reached the broker, then counts."""
    config = write_config(tmp_path, broker.url)
    db = tmp_path / "state" / "outbox.db"
    if bridges:  # the row log shows that the bridges' rows were in the outbox
        config.write_text(config.read_text() + bridges)
        db.parent.mkdir(parents=True, exist_ok=True)
        row_log.install(db)
    kill_9_while_committing(config, db, kills, rng, rows=5, after_s=(0.0, 1.4))
    accepted = last_seq(db)
    expected = set(range(1, accepted + 1))
    spb: list[str] = []
    # One more start drains what the kills left behind.
    proc = lintel("run", "-c", str(config))
    try:
        wait_status(config, lambda s: s["state"] == "running" and s["pid"] == proc.pid)
        assert collector.wait_for(lambda c: expected <= c.seqs(), 60), sorted(expected - collector.seqs())[
            :20
        ]
        if bridges:  # every Sparkplug DDATA row of the killed runs (every reading is in one) arrives
            spb = [t for s, t in row_log.rows(db).items() if "/DDATA/" in t]
            assert spb, "the Sparkplug bridge never got going"
            assert any(t.startswith("homeassistant/") for t in row_log.rows(db).values())

            def spb_arrived(c: Collector) -> bool:
                got = [t for t, _p, _r in c.bridged if "/DDATA/" in t]
                return all(got.count(t) >= spb.count(t) for t in set(spb))

            assert collector.wait_for(spb_arrived, 60)
        final = last_seq(db)
        # a stats message committed after the last seq the gaps are counted up to
        assert collector.wait_for(lambda c: any(m["seq"] > final for m in stats(c)), 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    data = collector.data()
    for m in data:
        validate(m.topic, m.payload)
    seqs = [m.payload["seq"] for m in data]
    reasons = [m.payload["boot_reason"] for m in collector.snapshot() if m.topic.endswith("/birth")]
    return KillRun(
        accepted=accepted,
        gaps=len(set(range(1, max(seqs) + 1)) - set(seqs)),
        dropped=stats(collector)[-1]["outbox"]["native_seqs_dropped"],
        duplicates=len(seqs) - len(set(seqs)),
        crash_births=reasons.count("crash"),
        bridge_rows=len(spb),
    )


@pytest.mark.parametrize("bridges", ["", BOTH_BRIDGES], ids=["native", "both_bridges"])
def test_kill_9_under_load_loses_no_accepted_record(
    tmp_path: Path, broker: Mosquitto, collector: Collector, bridges: str
) -> None:
    """A native receiver counting seqs sees a gap exactly where the `stats` drop counter says
    there is one, and nowhere else: bridge rows take no native seq (issue 28). KILLS kills at
    random moments of the commit load; many more, same checks: `python -m bench.kill9`."""
    run = kill_9_run(tmp_path, broker, collector, bridges, KILLS, random.Random(7))
    assert run.accepted > 10 * KILLS, "the load never got going: the test would prove nothing"
    assert run.gaps == run.dropped, f"{run.gaps} gaps, {run.dropped} counted as dropped"
    assert not run.gaps, f"{run.gaps} accepted messages lost"
    assert run.duplicates <= 100 * KILLS, f"{run.duplicates} duplicates from {KILLS} kills (window 100)"
    assert run.crash_births >= 1


def stats(c: Collector) -> list[dict[str, Any]]:
    """The `stats` messages received, in seq order."""
    return sorted((m.payload for m in c.data() if m.topic.endswith("/stats")), key=lambda p: p["seq"])


def test_systemd_notifications_and_graceful_stop(
    tmp_path: Path, broker: Mosquitto, collector: Collector
) -> None:
    config = write_config(tmp_path, broker.url)
    sock = NotifySocket(tmp_path / "notify")
    proc = lintel(
        "run", "-c", str(config), env={"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"}
    )
    try:
        assert sock.wait_for("READY", 15), proc.stderr.read1().decode() if proc.stderr else ""
        sock.collect(1.5)
    finally:
        stop_sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    stop_s = time.monotonic() - stop_sent
    sock.collect(0.3)
    messages = sock.messages
    sock.close()
    assert code == 0
    assert stop_s < 10, f"graceful stop took {stop_s:.1f} s"
    keys = [
        next(iter(m))
        if len(m) == 1
        else ("READY" if "READY" in m else "STOPPING" if "STOPPING" in m else "STATUS")
        for m in messages
    ]
    ready_at = keys.index("READY")
    assert messages[ready_at]["MAINPID"] == str(proc.pid)
    assert "running" in messages[ready_at]["STATUS"]
    pets = [i for i, k in enumerate(keys) if k == "WATCHDOG"]
    assert len(pets) >= 5 and min(pets) > ready_at
    stops = [i for i, k in enumerate(keys) if k == "STOPPING"]
    assert len(stops) == 1 and stops[0] > max(pets)
    # Everything accepted went out before the process ended; the outbox is empty and marked clean.
    db = tmp_path / "state" / "outbox.db"
    left = sum(scalar(db, f"SELECT COUNT(*) FROM m{k}") for k in range(4))
    assert left == 0 and meta(db, "clean_shutdown") == 1
    assert set(range(1, last_seq(db) + 1)) <= collector.seqs()
    status = [m for m in collector.snapshot() if m.topic.endswith("/status")]
    assert status[-1].payload["state"] == "offline"
    out = lintel_output("status", "-c", str(config))
    assert out.returncode == 3 and "not running" in out.stdout


def test_second_sigterm_forces_exit(tmp_path: Path, broker: Mosquitto) -> None:
    # The broker hangs (no more PUBACKs): a graceful stop waits for in-flight messages.
    proxy = CuttableProxy(broker.port)
    config = write_config(tmp_path, f"mqtt://127.0.0.1:{proxy.port}", runtime={"shutdown_timeout_s": 30})
    proc = lintel("run", "-c", str(config))
    try:
        wait_status(config, lambda s: s["uplink"]["state"] == "connected" and s["uplink"]["acked"] > 0)
        proxy.freeze()
        wait_status(config, lambda s: s["uplink"]["inflight"] > 0)
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert proc.poll() is None, "the first SIGTERM should still be waiting for in-flight messages"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.close()
    # Nothing accepted is lost by the forced exit: it is all still in the outbox.
    assert_intact(tmp_path / "state" / "outbox.db")


def test_corrupt_outbox_is_replaced_and_the_gateway_says_so(
    tmp_path: Path, broker: Mosquitto, collector: Collector
) -> None:
    config = write_config(tmp_path, broker.url)
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.db").write_bytes(os.urandom(64 * 1024))
    (state / "outbox.db.seq").write_text("500000\n")  # seqs the lost database had reserved
    proc = lintel("run", "-c", str(config))
    try:
        status = wait_status(config, lambda s: s["state"] == "running")
        assert status["boot_reason"] == "outbox_replaced"
        assert Path(status["outbox_recovery"]["moved_to"]).exists()
        human = lintel_output("status", "-c", str(config))
        assert human.returncode == 0 and "outbox was corrupt" in human.stdout
        assert collector.wait_for(
            lambda c: any(m.payload.get("kind") == "outbox_replaced" for m in c.data()), 15
        )
        event = next(m for m in collector.data() if m.payload.get("kind") == "outbox_replaced")
        validate(event.topic, event.payload)
        assert event.payload["seq"] > 500000, "seq must not go backwards when the database is replaced"
        assert collector.wait_for(lambda c: len(c.seqs()) > 20, 15), "the gateway keeps running"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_bad_config_exits_with_ex_config_and_names_the_problem(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[gateway]\nid = "gw"\nsite = "s"\n[outbox]\nmax_mb = -5\n')
    proc = lintel("run", "-c", str(config))
    code = proc.wait(20)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 78
    assert "outbox.max_mb: out of range (got -5); expected a number > 0" in err
    check = lintel_output("check-config", "-c", str(config))
    assert check.returncode == 78  # the standard's exit for a wrong config, as `run`
    assert "outbox.max_mb: out of range (got -5); expected a number > 0" in check.stdout
    checked = lintel_output("check-config", "--json", "-c", str(config))
    as_json = json.loads(checked.stdout)
    assert as_json["ok"] is False and len(as_json["problems"]) == 1
    assert checked.returncode == 78  # a script reading the JSON sees the failure in the status too


def test_outbox_overflow_drops_low_classes_and_is_reported_upstream(
    tmp_path: Path, broker: Mosquitto, collector: Collector
) -> None:
    proxy = CuttableProxy(broker.port)
    proxy.cut(refuse_s=3600)  # the uplink is down while the outbox fills up
    config = write_config(tmp_path, f"mqtt://127.0.0.1:{proxy.port}", outbox={"max_mb": 0.05})
    proc = lintel("run", "-c", str(config))
    try:
        status = wait_status(config, lambda s: s["outbox"]["dropped"].get("telemetry.outbox_full", 0) > 0)
        assert not any(k.startswith("alarm.") for k in status["outbox"]["dropped"])
        proxy.cut(refuse_s=0)
        assert collector.wait_for(
            lambda c: any(
                m.topic.endswith("/stats")
                and m.payload["outbox"]["dropped"].get("telemetry.outbox_full", 0) > 0
                for m in c.data()
            ),
            20,
        )
        birth = next(m for m in collector.snapshot() if m.topic.endswith("/birth"))
        validate(birth.topic, birth.payload)
        assert birth.payload["outbox"]["dropped"]["telemetry.outbox_full"] > 0
        assert birth.payload["clock_set"] is True
        stats = next(m for m in collector.data() if m.topic.endswith("/stats"))
        validate(stats.topic, stats.payload)
        assert not any(k.startswith("alarm.") for k in stats.payload["outbox"]["dropped"]), "alarms are kept"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        proxy.close()
