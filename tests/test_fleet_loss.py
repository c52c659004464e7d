"""A real gateway's loss, as the fleet reports it, against the gateway's own counters: the uplink
is down while the outbox overflows (forced drops), then comes back and the backlog drains. The
fleet's counted drops must equal what `lintel status` says the gateway dropped, every missing
seq must be a dropped message, and nothing else may be missing."""

from __future__ import annotations

import signal
from pathlib import Path

from fleet import db, queries
from tests.conftest import gateway_toml
from tests.support.fleet_db import scalar, wait_for
from tests.support.fleet_procs import PersistentMosquitto, start_worker, stop_process, wait_subscribed
from tests.support.process import lintel, wait_status
from tests.support.proxy import CuttableProxy

LOAD = """
[[sources]]
id = "load-1"
type = "simulated"
profile = "load"
points = 40
interval_s = 0.05

[[sources]]
id = "door-1"
type = "simulated"
profile = "door_sensor"
interval_s = 0.2
alarm_probability = 0.1
"""
QUIET = """
[[sources]]
id = "door-1"
type = "simulated"
profile = "door_sensor"
interval_s = 3600
"""


def write_config(tmp_path: Path, proxy_port: int, sources: str) -> Path:
    mqtt = (
        f'url = "mqtt://127.0.0.1:{proxy_port}"\nstats_interval_s = 1\n'
        "reconnect_initial_s = 0.2\nreconnect_max_s = 1\n"
    )
    text = gateway_toml(
        tmp_path / "state",
        mqtt=mqtt,
        sources=sources,
        extra="commit_window_ms = 50\nbatch_max_readings = 50\nmax_mb = 0.05\n",
    )
    text = text.replace("[outbox]", "[runtime]\nstatus_interval_s = 0.3\n\n[outbox]")
    config = tmp_path / "lintel.toml"
    config.write_text(text)
    return config


def test_fleet_loss_report_matches_the_gateways_own_drop_counters(tmp_path: Path, fleet_dsn: str) -> None:
    broker = PersistentMosquitto(tmp_path).start()
    worker = start_worker(fleet_dsn, broker.port, "w1", tmp_path)
    proxy = CuttableProxy(broker.port)
    proc = None
    try:
        wait_subscribed(tmp_path, "w1")
        # connected first, so the fleet sees the gateway from its first seq
        config = write_config(tmp_path, proxy.port, LOAD)
        proc = lintel("run", "-c", str(config))
        wait_for(lambda: scalar(fleet_dsn, "SELECT count(*) FROM ledger") > 20, 60, "first messages")
        proxy.cut(refuse_s=3600)  # the outage: the outbox overflows and drops telemetry
        wait_status(
            config, lambda s: s["outbox"]["dropped"].get("telemetry.outbox_full", 0) > 200, timeout=120
        )
        # stop producing (a quiet config, same outbox and seq), end the outage, let the backlog drain
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        config = write_config(tmp_path, proxy.port, QUIET)
        proc = lintel("run", "-c", str(config))
        proxy.cut(refuse_s=0)
        status = wait_status(
            config,
            lambda s: s["uplink"]["state"] == "connected" and sum(s["outbox"]["rows"].values()) == 0,
            timeout=120,
        )
        last_seq = status["outbox"]["last_seq"]
        wait_for(
            lambda: (scalar(fleet_dsn, "SELECT max(stats_seq) FROM gateways") or 0) > last_seq,
            60,
            "a stats sent after the backlog",
        )
        wait_for(
            lambda: (scalar(fleet_dsn, "SELECT max(seq) FROM ledger") or 0) >= last_seq, 60, "the last seq"
        )
        status = wait_status(config, lambda s: True)
        with db.connect(fleet_dsn) as conn:
            loss = queries.loss(conn, "gw-test")
        dropped = status["outbox"]["dropped"]
        assert dropped.get("telemetry.outbox_full", 0) > 200
        assert not any(k.startswith(("alarm.", "event.")) for k in dropped)
        # the gateway's own counters, exactly
        assert loss["dropped_counted"] == dropped
        # gaps: only where the outbox dropped (a dropped telemetry message held >= 1 reading), and
        # the fleet has every other seq from its first to the gateway's last
        assert 0 < loss["missing"] <= sum(dropped.values())
        assert loss["unexplained"] == 0
        assert loss["first_seq"] == 1
        assert loss["received"] + loss["missing"] == loss["last_seq"]
        assert loss["last_seq"] >= last_seq
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        stop_process(worker)
        proxy.close()
        broker.stop()
