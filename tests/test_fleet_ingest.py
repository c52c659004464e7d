"""Ingest: real mosquitto, real PostgreSQL, the real `lintel-fleet ingest` processes."""

from __future__ import annotations

import json
import time

from tests.support.fleet_db import scalar, wait_for
from tests.support.fleet_procs import start_worker, stop_process, wait_subscribed
from tests.support.fleet_sim import Sender, SimGateway


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_two_workers_write_each_message_once_and_keep_the_alarm_lifecycle(tmp_path, fleet_dsn, fleet_broker):
    workers = [start_worker(fleet_dsn, fleet_broker.port, f"w{i}", tmp_path) for i in (1, 2)]
    try:
        gw = SimGateway("bldg-01", "riverside", meters=3, sensors=2)
        sender = Sender(fleet_broker.port)
        wait_subscribed(tmp_path, "w1", "w2")
        t = now_ms()
        msgs = [gw.birth(t), gw.status(t), *gw.meter_telemetry(t), *gw.sensor_telemetry(t)]
        opened = gw.alarm(t)
        acked = gw.event(
            t + 1,
            "alarm_acked",
            {"alarm_id": "1", "alarm_kind": "threshold_exceeded", "by": "night-guard", "via": "mqtt"},
            source="meter-1",
        )
        second = gw.alarm(t + 2)
        resolved = gw.event(
            t + 3, "alarm_resolved", {"alarm_id": "2", "alarm_kind": "threshold_exceeded"}, source="meter-2"
        )
        stats = gw.stats(t + 4, offline=1)
        # out of order (the resolution before its alarm), and every message twice
        msgs += [resolved, opened, acked, second, stats]
        for topic, payload, seq in msgs + msgs:
            sender.send(gw.gateway_id, topic, payload, seq)
        # hostile input: counted and acknowledged, never written, never a crash
        sender.send("x", "lintel/riverside/bldg-01/telemetry/m", b"not json", None)
        sender.send(
            "x",
            "lintel/riverside/bldg-01/telemetry/m",
            json.dumps(
                {
                    "schema": "lintel.telemetry/1",
                    "gateway_id": "bldg-02",
                    "seq": 99,
                    "ts_ms": t,
                    "source_id": "m",
                    "readings": [],
                }
            ).encode(),
            None,
        )
        sender.send("x", "lintel/riverside/bldg-01/telemetry/m", b"{" * 600_000, None)
        sender.drain()
        wait_for(
            lambda: scalar(fleet_dsn, "SELECT count(*) FROM ledger") == gw.seq, what="every seq in the ledger"
        )
        # the duplicates went through too: the last message published has been handled
        wait_for(
            lambda: scalar(fleet_dsn, "SELECT count(*) FROM gateways WHERE stats_seq IS NOT NULL"),
            what="the stats",
        )
        assert scalar(fleet_dsn, "SELECT count(*) FROM ledger") == gw.seq
        assert scalar(fleet_dsn, "SELECT count(*) FROM readings") == 3 * 8 + 2 * 2
        assert scalar(fleet_dsn, "SELECT count(*) FROM events") == 4
        assert (
            scalar(fleet_dsn, "SELECT state || ' by ' || acked_by FROM alarms WHERE alarm_id = '1'")
            == "acknowledged by night-guard"
        )
        assert scalar(fleet_dsn, "SELECT state FROM alarms WHERE alarm_id = '2'") == "resolved"
        assert scalar(fleet_dsn, "SELECT kind FROM alarms WHERE alarm_id = '2'") == "threshold_exceeded"
        assert scalar(fleet_dsn, "SELECT count(*) FILTER (WHERE online IS FALSE) FROM devices") == 1
        assert (
            scalar(fleet_dsn, "SELECT version || ' ' || online || ' ' || births FROM gateways")
            == "0.1.0 true 1"
        )
        assert scalar(fleet_dsn, "SELECT count(*) FROM ledger WHERE gateway_id = 'bldg-02'") == 0
        assert all(w.poll() is None for w in workers)
        logs = "".join((tmp_path / f"w{i}.log").read_text() for i in (1, 2))
        assert "payload is not JSON" in logs or "is not a JSON" in logs or "payload of" in logs
    finally:
        for w in workers:
            stop_process(w)


def test_loss_report_separates_gaps_from_counted_drops_and_replaced_outboxes(
    tmp_path, fleet_dsn, fleet_broker
):
    worker = start_worker(fleet_dsn, fleet_broker.port, "w1", tmp_path)
    try:
        gw = SimGateway("bldg-07", "harbour", meters=2, sensors=0)
        sender = Sender(fleet_broker.port)
        wait_subscribed(tmp_path, "w1")
        t = now_ms()
        sent = [*gw.meter_telemetry(t)]  # seqs 1, 2
        gw.meter_telemetry(t)  # seqs 3, 4: dropped by the outbox for space (16 readings)
        gw.seq += 2  # seqs 5, 6: lost with a replaced outbox
        sent.append(
            gw.event(
                t,
                "outbox_replaced",
                {"seq_ranges_lost": {"telemetry": [[5, 6]]}, "rows_lost": 2},
                severity="warning",
            )
        )  # 7
        sent += gw.meter_telemetry(t)  # 8, 9
        sent.append(gw.stats(t, dropped={"telemetry.space": 16}))  # 10
        for topic, payload, seq in sent:
            sender.send(gw.gateway_id, topic, payload, seq)
        sender.drain()
        wait_for(lambda: scalar(fleet_dsn, "SELECT count(*) FROM ledger") == 6, what="six messages")
        from fleet import db, queries

        with db.connect(fleet_dsn) as conn:
            loss = queries.loss(conn, "bldg-07")
        assert loss["missing"] == 4 and loss["gaps"] == [[3, 6]]
        assert loss["lost_with_replaced_outbox"] == 2
        assert loss["dropped_counted"] == {"telemetry.space": 16}
        assert loss["unexplained"] == 0
        # a gap nothing accounts for
        gw.seq += 1
        for topic, payload, seq in [gw.event(t, "door_opened", {})]:
            sender.send(gw.gateway_id, topic, payload, seq)
        sender.drain()
        wait_for(lambda: scalar(fleet_dsn, "SELECT count(*) FROM ledger") == 7, what="seven messages")
        with db.connect(fleet_dsn) as conn:
            loss = queries.loss(conn, "bldg-07")
        assert loss["missing"] == 5 and loss["gaps"] == [[3, 6], [11, 11]]
    finally:
        stop_process(worker)
