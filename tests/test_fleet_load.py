"""1,000 gateways into 3 workers: nothing lost, nothing twice, while a worker is killed -9 and
restarted and the broker restarts once (real mosquitto with persistence, real PostgreSQL)."""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict

import pytest

from tests.support.fleet_db import scalar, wait_for
from tests.support.fleet_sim import (
    PersistentMosquitto,
    Sender,
    SimGateway,
    start_worker,
    stop_process,
    wait_subscribed,
)

GATEWAYS = 1000
METERS, SENSORS = 4, 2  # per gateway per round: 4 x 8 + 2 x 2 readings, and a stats


@pytest.fixture
def fleet_broker(tmp_path):  # type: ignore[no-untyped-def]
    b = PersistentMosquitto(tmp_path).start()
    yield b
    b.stop()


def test_three_workers_lose_and_repeat_nothing_through_a_kill_and_a_broker_restart(
    tmp_path, fleet_dsn, fleet_broker
):
    ids = ["w1", "w2", "w3"]
    workers = {wid: start_worker(fleet_dsn, fleet_broker.port, wid, tmp_path) for wid in ids}
    try:
        wait_subscribed(tmp_path, *ids)
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
        # kill -9 one worker while messages are in flight to it
        wait_for(lambda: scalar(fleet_dsn, "SELECT count(*) FROM ledger") > 2000, what="ingest under way")
        workers["w2"].send_signal(signal.SIGKILL)
        workers["w2"].wait(10)
        # the broker restarts (cleanly, saving its sessions) while the sender keeps publishing
        wait_for(lambda: counter["sent"] > 7000, what="more traffic")
        fleet_broker.restart()
        workers["w2"] = start_worker(fleet_dsn, fleet_broker.port, "w2", tmp_path)
        assert sent.wait(300), "the simulator did not finish publishing"
        sender.drain(300)
        total = sum(gw.seq for gw in gateways)
        assert total == GATEWAYS * 2 * (METERS + SENSORS + 1)
        # every seq the broker accepted is in the ledger exactly once (the primary key), and each
        # telemetry message's readings were written exactly once
        wait_for(
            lambda: scalar(fleet_dsn, "SELECT count(*) FROM ledger") >= total,
            timeout_s=300,
            what="every message in the ledger",
        )
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
        # the restarted worker got its session back and took part
        log = (tmp_path / "w2.log").read_text()
        assert log.count("subscribed to $share/") >= 2
        assert all(p.poll() is None for p in workers.values())
        sender.close()
    finally:
        for p in workers.values():
            stop_process(p)
