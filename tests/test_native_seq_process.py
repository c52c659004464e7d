"""A native receiver sees a hole in `seq` exactly where the `stats` drop counter says (issue 28),
with both bridges on and real drops: `lintel run` is killed (-9) three times under load while its
broker is unreachable and a small telemetry cap evicts the oldest telemetry (and bridge rows with
it). Then the broker comes back and a start without load drains the outbox; the counting
subscriber's holes must equal `native_seqs_dropped`, and be more than none."""

from __future__ import annotations

import random
import signal
from pathlib import Path
from typing import Any

from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.process import kill_9_while_committing, lintel, wait_status
from tests.support.proxy import CuttableProxy
from tests.test_process import BOTH_BRIDGES, stats, write_config

CAP = {"classes": {"telemetry": {"max_mb": 0.05, "max_age_h": 168}}}  # [outbox.classes.telemetry]


def test_holes_in_the_native_seq_are_exactly_the_counted_drops(
    tmp_path: Path, broker: Mosquitto, collector: Collector
) -> None:
    proxy = CuttableProxy(broker.port)
    proxy.cut(refuse_s=3600)
    config = write_config(tmp_path, f"mqtt://127.0.0.1:{proxy.port}", outbox=CAP)
    config.write_text(config.read_text() + BOTH_BRIDGES)
    db = tmp_path / "state" / "outbox.db"
    try:
        kill_9_while_committing(config, db, 3, random.Random(28), rows=50, after_s=(0.2, 1.2))
        # the same gateway without its load: nothing new is evicted while the backlog drains
        config.write_text(
            write_config(tmp_path, f"mqtt://127.0.0.1:{proxy.port}", sources="", outbox=CAP).read_text()
            + BOTH_BRIDGES
        )
        proxy.cut(refuse_s=0)
        proc = lintel("run", "-c", str(config))
        try:
            wait_status(config, lambda s: s["state"] == "running" and s["pid"] == proc.pid, 30)

            def drained(c: Collector) -> dict[str, Any] | None:
                """The first stats message sent with the outbox empty (all before it sent or dropped)."""
                return next((m for m in stats(c) if not sum(m["outbox"]["rows"].values())), None)

            assert collector.wait_for(lambda c: drained(c) is not None, 60)
            last = drained(collector)
            assert last is not None
            dropped = last["outbox"]["native_seqs_dropped"]

            def holes(c: Collector) -> set[int]:
                return set(range(1, last["seq"])) - c.seqs()

            assert collector.wait_for(lambda c: len(holes(c)) <= dropped, 30), (
                len(holes(collector)),
                dropped,
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        print(
            f"\nnative seqs 1..{last['seq'] - 1}: {len(holes(collector))} holes, {dropped} counted as dropped"
        )
        assert dropped > 0, "nothing was evicted: the test would prove nothing"
        assert len(holes(collector)) == dropped
        # Sparkplug rows were evicted with the native ones and left no hole (they carry no native seq)
        assert last["outbox"]["dropped"].get("telemetry.sparkplug_class_full", 0) > 0, last["outbox"][
            "dropped"
        ]
    finally:
        proxy.close()
