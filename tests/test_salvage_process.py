"""A corrupt outbox through a real `lintel run` and a real broker (issue 19): the daemon starts, the
`outbox_replaced` event's counts are exact, and a counting subscriber receives every row that was
readable (the oracle is SQLite's own reading of the file before the damage, by page)."""

from __future__ import annotations

import random
from pathlib import Path

from tests.conftest import gateway_toml
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.process import lintel, stop_and_show_log, wait_status
from tests.test_outbox_salvage import build, everything, leaves, page_size


def test_a_damaged_page_loses_only_its_rows_and_every_readable_row_reaches_the_broker(
    tmp_path: Path, broker: Mosquitto
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    db = state / "outbox.db"
    build(db).stop()  # 3,000 telemetry messages, 40 events, 6 alarms, queued while offline
    before = everything(db)
    pages = leaves(db, "m0")
    victim, on_it = pages[len(pages) // 3]
    size = page_size(db)
    data = bytearray(db.read_bytes())
    data[(victim - 1) * size : victim * size] = random.Random(7).randbytes(size)  # a failing SD card
    db.write_bytes(bytes(data))

    config = tmp_path / "lintel.toml"
    mqtt = f'url = "{broker.url}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 1\n'
    config.write_text(gateway_toml(state, mqtt=mqtt))
    collector = Collector(broker.port, topic="lintel/#").start()
    proc = lintel("run", "-c", str(config))
    try:
        status = wait_status(config, lambda s: s["state"] == "running", 30)
        assert status["boot_reason"] == "outbox_replaced"
        assert collector.wait_for(
            lambda c: any(m.topic.endswith("/gateway/outbox_replaced") for m in c.data()), 30
        )
        replaced = [m.payload for m in collector.data() if m.topic.endswith("/gateway/outbox_replaced")]
        body = replaced[0]["attrs"]
        assert body["rows_lost"] == on_it and body["rows_recovered"] == len(before) - on_it

        def data_seqs() -> set[int]:
            return {
                int(m.payload["seq"])
                for m in collector.data()
                if m.payload.get("gateway_id") == "gw-test" and m.payload["seq"] in wanted
            }

        wanted = {seq for (_, seq) in before}
        lost = {
            seq
            for _, seq in before
            if any(a <= seq <= b for ranges in body["seq_ranges_lost"].values() for a, b in ranges)
        }
        assert len(lost) == on_it
        assert collector.wait_for(lambda c: data_seqs() >= wanted - lost, 60), len(
            wanted - lost - data_seqs()
        )
        assert data_seqs() == wanted - lost  # every readable row, with its original seq; none of the lost
    finally:
        stop_and_show_log(proc)
        collector.stop()
