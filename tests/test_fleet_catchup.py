"""The catch-up session (fleet/catchup.py) against a real mosquitto restart: what the gateways
publish after the broker is back and before any worker has subscribed again reaches the ledger,
once; while the shared group receives, the catch-up session writes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.support.fleet_db import scalar, wait_for
from tests.support.fleet_procs import (
    start_catchup,
    start_worker,
    stop_process,
    wait_logged,
    wait_subscribed,
)
from tests.support.fleet_sim import ROOT, Sender, SimGateway


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def publish_round(sender: Sender, gw: SimGateway) -> int:
    """One round of the gateway's telemetry, acknowledged by the broker; how many messages."""
    batch = [*gw.meter_telemetry(now_ms()), *gw.sensor_telemetry(now_ms())]
    for topic, payload, seq in batch:
        sender.send(gw.gateway_id, topic, payload, seq)
    sender.drain(60)
    return len(batch)


def ledger(dsn: str) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM ledger"))


def counters(log: str) -> dict[str, int]:
    """The counters a fleet process logs when it stops."""
    line = next(x for x in log.splitlines() if "stopping: " in x)
    items = (item.rpartition(" ") for item in line.split("stopping: ", 1)[1].split(", "))
    return {name: int(number) for name, _, number in items}


def test_what_is_published_before_the_workers_subscribe_again_is_written_by_the_catch_up(
    tmp_path, fleet_dsn, fleet_broker
):
    worker = start_worker(fleet_dsn, fleet_broker.port, "w1", tmp_path)
    catchup = start_catchup(fleet_dsn, fleet_broker.port, tmp_path)
    sender = None
    try:
        wait_subscribed(tmp_path, "w1", "fleet-catchup")
        wait_logged(tmp_path, "fleet-catchup", "connection 1: caught up")
        gw = SimGateway("bldg-01", "riverside", meters=10, sensors=10)
        sender = Sender(fleet_broker.port)
        before = publish_round(sender, gw)
        wait_for(lambda: scalar(fleet_dsn, "SELECT count(*) FROM ledger") == before, what="the first round")

        # The broker restarts cleanly while neither process can reconnect (stopped, as a loaded
        # machine or a slower reconnect delay would have them): the gateway's messages go in,
        # the broker acknowledges them, and the workers' sessions come back without their
        # shared subscription.
        for p in (worker, catchup):
            p.send_signal(signal.SIGSTOP)
        fleet_broker.restart()
        gap = publish_round(sender, gw)
        for p in (worker, catchup):
            p.send_signal(signal.SIGCONT)
        wait_for(
            lambda: scalar(fleet_dsn, "SELECT count(*) FROM ledger") == before + gap,
            what="the messages published in the gap",
        )
        wait_logged(tmp_path, "fleet-catchup", "connection 2: caught up")
        after = publish_round(sender, gw)
        total = before + gap + after
        wait_for(lambda: scalar(fleet_dsn, "SELECT count(*) FROM ledger") == total, what="the last round")
        acked = {(g, s) for g, seqs in sender.acked.items() for s in seqs}
        assert len(acked) == total == gw.seq
        assert (
            scalar(fleet_dsn, "SELECT count(DISTINCT seq) FROM ledger WHERE gateway_id = 'bldg-01'") == total
        )
        assert scalar(fleet_dsn, "SELECT max(seq) FROM ledger") == total
    finally:
        if sender is not None:
            sender.close()
        stop_process(worker)
        stop_process(catchup)
    w, c = counters((tmp_path / "w1.log").read_text()), counters((tmp_path / "fleet-catchup.log").read_text())
    # the gap reached the ledger through the catch-up session alone: the worker never saw it
    # (if it did, this broker keeps shared subscriptions across a restart: see fleet/catchup.py)
    assert c["written"] == gap, c
    assert w["written"] == before + after, w
    # and while the group received, the catch-up session acknowledged without writing (a first
    # round message it had not acknowledged when it was stopped comes again on its next
    # connection, and is written there as a duplicate)
    assert c["skipped"] >= after, c
    assert c["skipped"] + c["duplicates"] == before + after, c
    assert w["echoed"] >= 2, w


def test_a_catch_up_id_that_is_no_topic_level_is_a_config_error():
    argv = ["catchup", "--db", "postgresql://x", "--broker", "mqtt://127.0.0.1:1", "--id", "fleet/#"]
    out = subprocess.run(
        [sys.executable, "-m", "fleet.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert out.returncode == 78
    assert "--id 'fleet/#'" in out.stderr and "letters, digits" in out.stderr


def test_a_catch_up_killed_before_it_wrote_the_gap_writes_it_when_it_comes_back(
    tmp_path, fleet_dsn, fleet_broker
):
    worker = start_worker(fleet_dsn, fleet_broker.port, "w1", tmp_path)
    catchup = start_catchup(fleet_dsn, fleet_broker.port, tmp_path)
    sender = None
    try:
        wait_subscribed(tmp_path, "w1", "fleet-catchup")
        wait_logged(tmp_path, "fleet-catchup", "connection 1: caught up")
        gw = SimGateway("bldg-02", "harbour", meters=10, sensors=10)
        sender = Sender(fleet_broker.port)
        for p in (worker, catchup):
            p.send_signal(signal.SIGSTOP)
        fleet_broker.restart()
        gap = publish_round(sender, gw)
        catchup.send_signal(signal.SIGKILL)  # killed with the gap queued to its session, unread
        catchup.wait(10)
        worker.send_signal(signal.SIGCONT)
        wait_logged(tmp_path, "w1", "subscribed to ", count=2)
        after = publish_round(sender, gw)
        # the worker writes what came after its subscription, and nothing of the gap
        wait_for(lambda: ledger(fleet_dsn) == after, what="the round after the restart")
        assert scalar(fleet_dsn, "SELECT min(seq) FROM ledger") == gap + 1
        # the catch-up session comes back under its id (as systemd restarts it): its session
        # kept the gap, and it writes it
        catchup = start_catchup(fleet_dsn, fleet_broker.port, tmp_path)
        wait_for(lambda: ledger(fleet_dsn) == gap + after, what="the gap, from the catch-up's session")
        assert scalar(fleet_dsn, "SELECT count(DISTINCT seq) FROM ledger") == gw.seq == gap + after
        log = wait_logged(tmp_path, "fleet-catchup", "connection 1: caught up", count=2)
        assert "connected to the broker as fleet-catchup (connection 1, session present: True)" in log
    finally:
        if sender is not None:
            sender.close()
        stop_process(worker)
        stop_process(catchup)


def test_when_no_worker_answers_a_probe_the_catch_up_writes_again(tmp_path, fleet_dsn, fleet_broker):
    # every worker gone past its session expiry leaves no group to queue to: the catch-up session
    # is then the only path, so it writes as soon as no probe comes back (3 s here, 60 s by default)
    worker = start_worker(fleet_dsn, fleet_broker.port, "w1", tmp_path)
    catchup = start_catchup(fleet_dsn, fleet_broker.port, tmp_path, "fleet-catchup", "--echo-timeout-s", "3")
    sender = None
    try:
        wait_subscribed(tmp_path, "w1", "fleet-catchup")
        wait_logged(tmp_path, "fleet-catchup", "connection 1: caught up")
        gw = SimGateway("bldg-03", "hillcrest", meters=10, sensors=10)
        sender = Sender(fleet_broker.port)
        worker.send_signal(signal.SIGSTOP)  # stops answering
        wait_logged(tmp_path, "fleet-catchup", "no probe came back for 3 s")
        sent = publish_round(sender, gw)
        wait_for(lambda: ledger(fleet_dsn) == sent, what="the round, written by the catch-up session")
        worker.send_signal(signal.SIGCONT)  # the worker's copies are duplicates now
        wait_logged(tmp_path, "fleet-catchup", "connection 1: caught up", count=2)
    finally:
        if sender is not None:
            sender.close()
        stop_process(worker)
        stop_process(catchup)
    assert ledger(fleet_dsn) == sent == gw.seq
    c = counters((tmp_path / "fleet-catchup.log").read_text())
    assert c["written"] == sent, c
    assert counters((tmp_path / "w1.log").read_text())["duplicates"] == sent
