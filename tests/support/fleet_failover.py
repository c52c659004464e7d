"""One fleet failover run, for tests/test_fleet_load.py and bench/fleet_failover.py: simulated
gateways publish into 3 `lintel-fleet ingest` workers and the catch-up session (real mosquitto
with persistence, real PostgreSQL) while a worker is killed -9 and restarted, the broker restarts
cleanly, or both; then the ledger is counted against what the broker acknowledged.

`run` only drives the scenario and counts; the caller decides what must hold (`Outcome`)."""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.support.fleet_db import scalar, wait_for
from tests.support.fleet_procs import (
    PersistentMosquitto,
    start_catchup,
    start_worker,
    stop_process,
    wait_subscribed,
)
from tests.support.fleet_sim import Sender, SimGateway

SCENARIOS = ("worker_killed", "broker_restarted", "worker_killed_and_broker_restarted")
METERS, SENSORS = 4, 2  # per gateway per round: 4 x 8 + 2 x 2 readings, and a stats


@dataclass(frozen=True)
class Outcome:
    """What one run counted."""

    sent: int  # telemetry and stats messages the gateways published (births apart)
    acked: int  # distinct (gateway, seq) the broker acknowledged
    ledger: int  # rows in the ledger (its primary key is (gateway, seq): each once at most)
    readings: int  # rows in readings
    readings_sent: int  # readings in the acknowledged messages
    duplicate_readings: int  # (gateway, seq, source, point) written more than once
    one_birth: int  # gateways whose birth was counted exactly once
    w2_session_back: bool  # the restarted worker's log says its session was present
    all_alive: bool  # every worker and the catch-up session still running at the end
    seconds: float  # from the first message to the last ledger row


def wait_for_ledger(dsn: str, total: int, stall_s: float = 90) -> None:
    """Wait until the ledger holds `total` rows, failing once it stops growing for `stall_s`
    (a loaded machine is slow, but it is never stuck)."""
    last, since = -1, time.monotonic()
    while (n := scalar(dsn, "SELECT count(*) FROM ledger")) < total:
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > stall_s:
            raise AssertionError(f"the ledger stopped at {n} of {total} rows for {stall_s:g} s")
        time.sleep(0.2)


def run(
    dsn: str, broker: PersistentMosquitto, work: Path, scenario: str, gateways: int = 1000, rounds: int = 2
) -> Outcome:
    """Drive `scenario` (one of SCENARIOS) with `gateways` publishing `rounds` rounds each."""
    if scenario not in SCENARIOS:
        raise ValueError(scenario)
    ids = ["w1", "w2", "w3"]
    workers = {wid: start_worker(dsn, broker.port, wid, work) for wid in ids}
    # the fleet's catch-up session: covers what the broker routes before the workers have their
    # shared subscription back after its restart (mosquitto 2.0 does not save those)
    workers["fleet-catchup"] = start_catchup(dsn, broker.port, work)
    sender = None
    try:
        wait_subscribed(work, *ids, "fleet-catchup")
        sims = [
            SimGateway(f"gw-{i:04d}", f"site-{i // 10:03d}", meters=METERS, sensors=SENSORS)
            for i in range(gateways)
        ]
        sender = Sender(broker.port)
        readings_per_seq: dict[tuple[str, int], int] = {}
        sent = threading.Event()
        counter: dict[str, int] = defaultdict(int)

        def publish() -> None:
            for _ in range(rounds):
                for gw in sims:
                    now = time.time_ns() // 1_000_000
                    batch = [*gw.meter_telemetry(now), *gw.sensor_telemetry(now), gw.stats(now)]
                    for topic, payload, seq in batch:
                        readings_per_seq[(gw.gateway_id, seq)] = payload.count(b'"point"')  # type: ignore[index]
                        sender.send(gw.gateway_id, topic, payload, seq)
                        counter["sent"] += 1
            sent.set()

        started = time.monotonic()
        for gw in sims:
            sender.send(gw.gateway_id, *gw.birth(time.time_ns() // 1_000_000))
        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        # a round is 7 messages per gateway: the kill comes in the first, the restart in the second
        wait_for(lambda: counter["sent"] > gateways * 5, what="traffic under way")
        if "worker" in scenario:
            # killed -9 while messages are in flight to it; it comes back under its id (as systemd
            # restarts it) and gets its session, and with it those messages, back
            workers["w2"].send_signal(signal.SIGKILL)
            workers["w2"].wait(10)
            wait_for(lambda: counter["sent"] > gateways * 7, what="more traffic")
            workers["w2"] = start_worker(dsn, broker.port, "w2", work)
        if "broker" in scenario:
            # a clean restart (mosquitto saves its sessions and queues) with messages in flight
            wait_for(lambda: counter["sent"] > gateways * 9, what="more traffic")
            broker.restart()
        assert sent.wait(300), "the simulator did not finish publishing"
        sender.drain(300)
        total = sum(gw.seq for gw in sims)
        wait_for_ledger(dsn, total)
        seconds = time.monotonic() - started
        log = (work / "w2.log").read_text()
        return Outcome(
            sent=total,
            acked=len({(g, s) for g, seqs in sender.acked.items() for s in seqs}),
            ledger=scalar(dsn, "SELECT count(*) FROM ledger"),
            readings=scalar(dsn, "SELECT count(*) FROM readings"),
            readings_sent=sum(readings_per_seq.values()),
            duplicate_readings=scalar(
                dsn,
                "SELECT count(*) FROM (SELECT gateway_id, seq, source_id, point FROM readings"
                " GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d",
            ),
            one_birth=scalar(dsn, "SELECT count(*) FROM gateways WHERE births = 1"),
            w2_session_back="connected to the broker as w2 (connection 1, session present: True)" in log,
            all_alive=all(p.poll() is None for p in workers.values()),
            seconds=seconds,
        )
    finally:
        if sender is not None:
            sender.close()
        for p in workers.values():
            stop_process(p)
