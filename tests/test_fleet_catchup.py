"""The catch-up session (fleet/catchup.py) against a real mosquitto restart: what the gateways
publish after the broker is back and before any worker has subscribed again reaches the ledger,
once; while the shared group receives, the catch-up session writes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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


def ledger(dsn: str) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM ledger"))


def counters(log: str) -> dict[str, int]:
    """The counters a fleet process logs when it stops."""
    line = next(x for x in log.splitlines() if "stopping: " in x)
    items = (item.rpartition(" ") for item in line.split("stopping: ", 1)[1].split(", "))
    return {name: int(number) for name, _, number in items}


@dataclass
class Fleet:
    """A worker (`w1`) and the catch-up session on one broker and ledger, and a gateway sending."""

    dsn: str
    worker: subprocess.Popen[bytes]
    catchup: subprocess.Popen[bytes]  # a test that kills it puts the restarted one here
    gw: SimGateway
    sender: Sender

    def publish_round(self) -> int:
        """One round of the gateway's telemetry, acknowledged by the broker; how many messages."""
        batch = [*self.gw.meter_telemetry(now_ms()), *self.gw.sensor_telemetry(now_ms())]
        for topic, payload, seq in batch:
            self.sender.send(self.gw.gateway_id, topic, payload, seq)
        self.sender.drain(60)
        return len(batch)

    def round_written(self, already: int, what: str) -> int:
        """Publish a round and wait until the ledger holds it beside `already` rows; its size."""
        sent = self.publish_round()
        wait_for(lambda: ledger(self.dsn) == already + sent, what=what)
        return sent


def freeze(*procs: subprocess.Popen[bytes]) -> None:
    """SIGSTOP: the process cannot reconnect (as on a loaded machine or with a slow retry)."""
    for p in procs:
        p.send_signal(signal.SIGSTOP)


def thaw(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        p.send_signal(signal.SIGCONT)


@contextmanager
def fleet(tmp_path: Path, dsn: str, broker_port: int, gw: SimGateway, *catchup_args: str) -> Iterator[Fleet]:
    """Both fleet processes subscribed (the catch-up caught up on its first connection) and a
    sender for `gw`; on the way out the sender is closed and both processes stopped (their
    counters are then in `w1.log` and `fleet-catchup.log`)."""
    worker = start_worker(dsn, broker_port, "w1", tmp_path)
    catchup = start_catchup(dsn, broker_port, tmp_path, "fleet-catchup", *catchup_args)
    rig = None
    try:
        wait_subscribed(tmp_path, "w1", "fleet-catchup")
        wait_logged(tmp_path, "fleet-catchup", "connection 1: caught up")
        rig = Fleet(dsn, worker, catchup, gw, Sender(broker_port))
        yield rig
    finally:
        if rig is not None:
            rig.sender.close()
            catchup = rig.catchup
        stop_process(worker)
        stop_process(catchup)


def test_what_is_published_before_the_workers_subscribe_again_is_written_by_the_catch_up(
    tmp_path, fleet_dsn, fleet_broker
):
    gw = SimGateway("bldg-01", "riverside", meters=10, sensors=10)
    with fleet(tmp_path, fleet_dsn, fleet_broker.port, gw) as f:
        before = f.round_written(0, "the first round")
        # The broker restarts cleanly while neither process can reconnect: the gateway's messages
        # go in, the broker acknowledges them, and the workers' sessions come back without their
        # shared subscription.
        freeze(f.worker, f.catchup)
        fleet_broker.restart()
        gap = f.publish_round()
        thaw(f.worker, f.catchup)
        wait_for(lambda: ledger(fleet_dsn) == before + gap, what="the messages published in the gap")
        wait_logged(tmp_path, "fleet-catchup", "connection 2: caught up")
        after = f.round_written(before + gap, "the last round")
        total = before + gap + after
        acked = {(g, s) for g, seqs in f.sender.acked.items() for s in seqs}
        assert len(acked) == total == gw.seq
        assert (
            scalar(fleet_dsn, "SELECT count(DISTINCT seq) FROM ledger WHERE gateway_id = 'bldg-01'") == total
        )
        assert scalar(fleet_dsn, "SELECT max(seq) FROM ledger") == total
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
    gw = SimGateway("bldg-02", "harbour", meters=10, sensors=10)
    with fleet(tmp_path, fleet_dsn, fleet_broker.port, gw) as f:
        freeze(f.worker, f.catchup)
        fleet_broker.restart()
        gap = f.publish_round()
        f.catchup.send_signal(signal.SIGKILL)  # killed with the gap queued to its session, unread
        f.catchup.wait(10)
        thaw(f.worker)
        wait_logged(tmp_path, "w1", "subscribed to ", count=2)
        # the worker writes what came after its subscription, and nothing of the gap
        after = f.round_written(0, "the round after the restart")
        assert scalar(fleet_dsn, "SELECT min(seq) FROM ledger") == gap + 1
        # the catch-up session comes back under its id (as systemd restarts it): its session
        # kept the gap, and it writes it
        f.catchup = start_catchup(fleet_dsn, fleet_broker.port, tmp_path)
        wait_for(lambda: ledger(fleet_dsn) == gap + after, what="the gap, from the catch-up's session")
        assert scalar(fleet_dsn, "SELECT count(DISTINCT seq) FROM ledger") == gw.seq == gap + after
        log = wait_logged(tmp_path, "fleet-catchup", "connection 1: caught up", count=2)
        assert "connected to the broker as fleet-catchup (connection 1, session present: True)" in log


def test_when_no_worker_answers_a_probe_the_catch_up_writes_again(tmp_path, fleet_dsn, fleet_broker):
    # every worker gone past its session expiry leaves no group to queue to: the catch-up session
    # is then the only path, so it writes as soon as no probe comes back (3 s here, 60 s by default)
    gw = SimGateway("bldg-03", "hillcrest", meters=10, sensors=10)
    with fleet(tmp_path, fleet_dsn, fleet_broker.port, gw, "--echo-timeout-s", "3") as f:
        freeze(f.worker)  # stops answering
        wait_logged(tmp_path, "fleet-catchup", "no probe came back for 3 s")
        sent = f.round_written(0, "the round, written by the catch-up session")
        thaw(f.worker)  # the worker's copies are duplicates now
        wait_logged(tmp_path, "fleet-catchup", "connection 1: caught up", count=2)
    assert ledger(fleet_dsn) == sent == gw.seq
    c = counters((tmp_path / "fleet-catchup.log").read_text())
    assert c["written"] == sent, c
    assert counters((tmp_path / "w1.log").read_text())["duplicates"] == sent
