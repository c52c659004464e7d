"""`lintel run` with the bridges on (Home Assistant; Home Assistant and Sparkplug B): kill -9 under load
during a broker outage loses nothing, native or bridged."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from gateway.storage.outbox.schema import TABLES
from tests.support import ha_schema
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.outbox_db import last_seq, meta, query
from tests.support.process import kill_9_while_committing, lintel, wait_status
from tests.support.proxy import CuttableProxy
from tests.support.schema import validate
from tests.test_process import write_config

BRIDGE = "\n[bridges.home_assistant]\nenabled = true\n"
# Sparkplug at QoS 1 (its documented option): every DDATA row must reach the broker, as checked below
BOTH = BRIDGE + "\n[bridges.sparkplug]\nenabled = true\nqos = 1\n"


def outbox_rows(db: Path) -> list[tuple[int, str, int | None]]:
    """(row seq, topic, native seq) of every row; bridge rows have no native seq."""
    return [
        row for table in TABLES.values() for row in query(db, f"SELECT seq, topic, native_seq FROM {table}")
    ]


@pytest.mark.parametrize("bridges", [BRIDGE, BOTH], ids=["home_assistant", "both"])
def test_kill_9_under_load_with_the_bridge_loses_no_accepted_message(
    tmp_path: Path, broker: Mosquitto, collector: Collector, bridges: str
) -> None:
    # Kills while the broker is unreachable: everything accepted stays in the outbox, so after the
    # kills we know exactly which rows are native and which are bridge rows.
    proxy = CuttableProxy(broker.port)
    proxy.cut(refuse_s=3600)
    config = write_config(tmp_path, f"mqtt://127.0.0.1:{proxy.port}")
    config.write_text(config.read_text() + bridges)
    db = tmp_path / "state" / "outbox.db"
    try:
        kill_9_while_committing(config, db, 4, random.Random(21), rows=5, after_s=(0.0, 1.0))
        rows = outbox_rows(db)
        assert sorted(r for r, _t, _n in rows) == list(range(1, meta(db, "last_row") + 1))  # nothing missing
        bridged = {(r, t) for r, t, _n in rows if t.startswith("homeassistant/") or "/ha/" in t}
        spb = {(r, t) for r, t, _n in rows if t.startswith("spBv1.0/")}
        assert bool(spb) == (bridges == BOTH)
        assert all(n is None for r, t, n in rows if (r, t) in bridged | spb)  # bridge rows: no native seq
        native = {n for _r, _t, n in rows if n is not None}
        assert native == set(range(1, last_seq(db) + 1))  # native seqs without a hole
        killed_rows = meta(db, "last_row")
        assert len(bridged) >= 100 and len(native) > 20, "the load or the bridge never got going"
        # each point is announced once, not again after every restart
        assert len({t for _r, t in bridged if t.endswith("/config")}) == len(
            [t for _r, t in bridged if t.endswith("/config")]
        )
        proxy.cut(refuse_s=0)
        proc = lintel("run", "-c", str(config))
        try:
            wait_status(config, lambda s: s["state"] == "running" and s["pid"] == proc.pid)
            assert collector.wait_for(lambda c: native <= c.seqs(), 60), sorted(native - collector.seqs())[
                :20
            ]
            topics = {t for _r, t in bridged}
            assert collector.wait_for(lambda c: topics <= {t for t, _p, _r in c.bridged}, 30)
            # Sparkplug: every DDATA row (every reading is in one) reached the broker, as history (the
            # DBIRTH/DDEATH rows are superseded by the new session's births)
            spb_data = [t for _r, t in spb if "/DDATA/" in t]
            assert collector.wait_for(
                lambda c: len([t for t, _p, _r in c.bridged if "/DDATA/" in t]) >= len(spb_data), 30
            )
            got = [t for t, _p, _r in collector.bridged if "/DDATA/" in t]
            assert all(got.count(t) >= spb_data.count(t) for t in set(spb_data))
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        for m in collector.data():
            validate(m.topic, m.payload)
        for topic, payload, _retain in collector.bridged:
            if topic.endswith("/config") and payload:
                ha_schema.check(topic, payload)
        # The clean stop drained the outbox: the bridge rows were acknowledged like the native ones.
        assert all(r > killed_rows for r, _t, _n in outbox_rows(db))
    finally:
        proxy.close()
