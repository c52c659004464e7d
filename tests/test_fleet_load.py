"""1,000 gateways into 3 workers and the catch-up session: nothing lost, nothing twice, while a
worker is killed -9 and restarted, while the broker restarts, and both in one run (real mosquitto
with persistence, real PostgreSQL)."""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict

import pytest

from tests.support.fleet_db import scalar, wait_for
from tests.support.fleet_procs import (
    PersistentMosquitto,
    start_catchup,
    start_worker,
    stop_process,
    wait_subscribed,
)
from tests.support.fleet_sim import Sender, SimGateway

GATEWAYS = 1000
METERS, SENSORS = 4, 2  # per gateway per round: 4 x 8 + 2 x 2 readings, and a stats


@pytest.fixture
def fleet_broker(tmp_path):  # type: ignore[no-untyped-def]
    b = PersistentMosquitto(tmp_path).start()
    yield b
    b.stop()


SCENARIOS = ["worker_killed", "broker_restarted", "worker_killed_and_broker_restarted"]


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


@pytest.mark.timeout(420)  # 14,000 messages through PostgreSQL: minutes on a loaded 2-core machine
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_three_workers_lose_and_repeat_nothing(tmp_path, fleet_dsn, fleet_broker, scenario):
    ids = ["w1", "w2", "w3"]
    workers = {wid: start_worker(fleet_dsn, fleet_broker.port, wid, tmp_path) for wid in ids}
    # the fleet's catch-up session: covers what the broker routes before the workers have their
    # shared subscription back after its restart (mosquitto 2.0 does not save those)
    workers["fleet-catchup"] = start_catchup(fleet_dsn, fleet_broker.port, tmp_path)
    try:
        wait_subscribed(tmp_path, *ids, "fleet-catchup")
        gateways = [
            SimGateway(f"gw-{i:04d}", f"site-{i // 10:03d}", meters=METERS, sensors=SENSORS)
            for i in range(GATEWAYS)
        ]
        sender = Sender(fleet_broker.port)
        readings_per_seq: dict[tuple[str, int], int] = {}
        sent = threading.Event()
        counter = defaultdict(int)

        def publish(rounds: int) -> None:
            for _ in range(rounds):
                for gw in gateways:
                    now = time.time_ns() // 1_000_000
                    batch = [*gw.meter_telemetry(now), *gw.sensor_telemetry(now), gw.stats(now)]
                    for topic, payload, seq in batch:
                        readings_per_seq[(gw.gateway_id, seq)] = payload.count(b'"point"')  # type: ignore[index]
                        sender.send(gw.gateway_id, topic, payload, seq)
                        counter["sent"] += 1
            sent.set()

        for gw in gateways:
            sender.send(gw.gateway_id, *gw.birth(time.time_ns() // 1_000_000))
        publisher = threading.Thread(target=publish, args=(2,), daemon=True)
        publisher.start()
        wait_for(lambda: counter["sent"] > GATEWAYS * 5, what="traffic under way")
        if "worker" in scenario:
            # killed -9 while messages are in flight to it; it comes back under its id (as systemd
            # restarts it) and gets its session, and with it those messages, back
            workers["w2"].send_signal(signal.SIGKILL)
            workers["w2"].wait(10)
            wait_for(lambda: counter["sent"] > GATEWAYS * 7, what="more traffic")
            workers["w2"] = start_worker(fleet_dsn, fleet_broker.port, "w2", tmp_path)
        if "broker" in scenario:
            # a clean restart (mosquitto saves its sessions and queues) with messages in flight
            wait_for(lambda: counter["sent"] > GATEWAYS * 9, what="more traffic")
            fleet_broker.restart()
        assert sent.wait(300), "the simulator did not finish publishing"
        sender.drain(300)
        total = sum(gw.seq for gw in gateways)
        assert total == GATEWAYS * 2 * (METERS + SENSORS + 1)
        # every seq the broker accepted is in the ledger exactly once (the primary key), and each
        # telemetry message's readings were written exactly once
        wait_for_ledger(fleet_dsn, total)
        acked = {(g, s) for g, seqs in sender.acked.items() for s in seqs}
        assert len(acked) == total
        assert scalar(fleet_dsn, "SELECT count(*) FROM ledger") == total
        assert scalar(fleet_dsn, "SELECT count(*) FROM readings") == sum(readings_per_seq.values())
        assert (
            scalar(
                fleet_dsn,
                "SELECT count(*) FROM (SELECT gateway_id, seq, source_id, point FROM readings"
                " GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d",
            )
            == 0
        )
        assert scalar(fleet_dsn, "SELECT count(*) FROM gateways WHERE births = 1") == GATEWAYS
        if "worker" in scenario:
            # the restarted worker got its session back (and with it what was in flight to it)
            log = (tmp_path / "w2.log").read_text()
            assert "connected to the broker as w2 (connection 1, session present: True)" in log
        assert all(p.poll() is None for p in workers.values())
        sender.close()
    finally:
        for p in workers.values():
            stop_process(p)
