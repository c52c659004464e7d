"""The native numbering apart from the rows' (outbox schema 3, issue 28): bridge rows take no native
seq, so a receiver sees a hole in `seq` exactly where a drop is counted, and nowhere else."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from gateway.core import Event, Klass, Reading, SystemClock
from gateway.storage.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.storage.outbox.checks import row_crc
from gateway.storage.outbox.schema import SCHEMA_VERSION, TABLES
from gateway.upstream.encode import Encoder
from tests.support.harness import TOPICS, both_bridges

T = 1_700_000_000_000


def native_rows(db: Path) -> dict[int, tuple[Klass, int]]:
    """native seq -> (class, row seq) of every native row in the file; bridge rows have none."""
    conn = sqlite3.connect(db)
    try:
        out = {}
        for klass, table in TABLES.items():
            for seq, native, records, payload in conn.execute(
                f"SELECT seq, native_seq, records, payload FROM {table}"
            ):
                if records == 0:
                    assert native is None, "a bridge row took a native seq"
                    continue
                assert json.loads(payload)["seq"] == native  # what the receiver reads
                out[native] = (klass, seq)
        return out
    finally:
        conn.close()


def test_bridge_rows_leave_no_hole_and_every_hole_is_a_counted_drop(tmp_path: Path) -> None:
    limits = OutboxLimits(
        commit_window_s=0.01, batch_max_readings=5, class_max_bytes={Klass.TELEMETRY: 20_000}
    )
    writer = OutboxWriter(
        OutboxStore(tmp_path / "o.db"), Encoder(TOPICS, both_bridges(tmp_path)), SystemClock(), limits
    )
    writer.start()
    try:
        for i in range(3000):  # no uplink: telemetry overflows its class cap and is evicted
            writer.submit(Reading(f"meter-{i % 5}", "power_w", float(i), T + i))
            if i % 100 == 0:
                writer.submit(Event("door-1", "door_opened", T + i, {"i": i}))
                assert writer.flush()
        assert writer.flush()
        last_row, last_seq = writer.position
        report = writer.report()
    finally:
        writer.stop()
    held = native_rows(tmp_path / "o.db")
    assert last_row > last_seq, "the bridges wrote no rows: the test would prove nothing"
    holes = set(range(1, last_seq + 1)) - set(held)
    assert report.dropped.get("telemetry.class_full", 0) > 0 and holes, "nothing was evicted"
    assert len(holes) == report.native_seqs_dropped
    # the holes are the oldest telemetry messages: every event is still there
    events = [n for n, (klass, _) in held.items() if klass == Klass.EVENT]
    assert len(events) == 30 and not holes & set(events)
    oldest_kept = min(n for n, (klass, _) in held.items() if klass == Klass.TELEMETRY)
    assert all(h < oldest_kept for h in holes)


def schema_2_file(db: Path) -> None:
    """An outbox written by the previous release: one numbering for native and bridge rows."""
    conn = sqlite3.connect(db)
    for table in TABLES.values():
        conn.execute(
            f"CREATE TABLE {table} (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL, "
            "created_ms INTEGER NOT NULL, records INTEGER NOT NULL, crc INTEGER)"
        )
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID")
    old = [
        (Klass.TELEMETRY, 7, "lintel/site-a/gw-test/telemetry/m1", json.dumps({"seq": 7}).encode(), 3),
        (Klass.TELEMETRY, 8, "spBv1.0/site-a/DDATA/gw-test/m1", b"\x08\x01", 0),
        (Klass.EVENT, 9, "lintel/site-a/gw-test/event/door-1", json.dumps({"seq": 9}).encode(), 1),
    ]
    for klass, seq, topic, payload, records in old:
        crc = row_crc(int(klass), seq, records, topic.encode(), payload)
        conn.execute(
            f"INSERT INTO {TABLES[klass]} VALUES (?,?,?,?,?,?)", (seq, topic, payload, T, records, crc)
        )
    conn.execute("INSERT INTO meta VALUES ('last_seq', 9)")
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()


def test_a_schema_2_outbox_migrates_on_open_and_both_numberings_continue(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    schema_2_file(db)
    writer = OutboxWriter(
        OutboxStore(db), Encoder(TOPICS, both_bridges(tmp_path)), SystemClock(), OutboxLimits()
    )
    writer.start()
    try:
        assert writer.position == (9, 9)
        writer.submit(Reading("meter-1", "power_w", 1.0, T))
        writer.submit(Event("door-1", "door_opened", T, {}))
        assert writer.flush()
        last_row, last_seq = writer.position
    finally:
        writer.stop()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    conn.close()
    assert (meta["last_row"], meta["last_seq"]) == (last_row, last_seq)
    held = native_rows(db)
    # the old rows keep their numbers (their payloads are written); the old bridge row has none
    assert held[7] == (Klass.TELEMETRY, 7) and held[9] == (Klass.EVENT, 9) and 8 not in held
    # new native messages continue from 9 without a hole, whatever the bridges added
    assert sorted(n for n in held if n > 9) == list(range(10, last_seq + 1)) and last_seq == 11
    assert last_row > last_seq


def test_salvage_names_the_lost_stretch_in_native_seqs() -> None:
    """A damaged page lost row seqs 5..8 of telemetry; bridge rows between carry no native seq, so
    the event names the native seqs a receiver will miss: those between the recovered neighbours."""
    from gateway.storage.outbox.salvage import Row, _in_native_seqs

    def row(seq: int, native: int | None) -> Row:
        return Row(Klass.TELEMETRY, seq, b"t", b"p", T, 1 if native else 0, 0, native)

    recovered = [row(1, 1), row(2, None), row(3, 2), row(4, None), row(9, 5), row(10, None), row(11, 6)]
    assert _in_native_seqs([(5, 8)], recovered, last_seq=6) == [(3, 4)]
    assert _in_native_seqs([(12, 20)], recovered, last_seq=9) == [(7, 9)]  # past the last recovered row
    assert _in_native_seqs([(10, 10)], recovered, last_seq=6) == []  # only a bridge row was there
