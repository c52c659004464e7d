"""A damaged outbox file keeps every readable row, with its seq; the counts of what was lost are exact.

Each test damages a real file the way a failing SD card or a crash does, and takes the expected
loss from SQLite itself (the `dbstat` table: which page holds how many rows) before the damage,
never from the salvage code under test.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pytest

from gateway.core import Event, Klass, Reading, SystemClock
from gateway.storage.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.storage.outbox.store import OutboxReader
from gateway.upstream.encode import Encoder, Topics
from tests.support.outbox_db import query, scalar

ENC = Encoder(Topics("lintel", "site-a", "gw-test"))
Rows = dict[tuple[Klass, int], tuple[str, bytes]]


def build(db: Path, telemetry: int = 3000, alarms: int = 6, events: int = 40) -> OutboxWriter:
    """An outbox with one message per reading (many rows, many pages), alarms and events."""
    w = OutboxWriter(
        OutboxStore(db), ENC, SystemClock(), OutboxLimits(commit_window_s=5, batch_max_readings=1)
    )
    w.start()
    for i in range(telemetry):
        w.submit(Reading(f"meter-{i % 50}", "power_w", float(i), 1_700_000_000_000 + i))
    for i in range(events):
        w.submit(Event("door-1", "door_opened", 1_700_000_000_000 + i, {"i": i}))
    for i in range(alarms):
        w.submit(Event("door-1", "door_forced", 1_700_000_000_000 + i, {"i": i}, "alarm"))
    assert w.flush()
    return w


def built(tmp_path: Path) -> tuple[Path, Rows]:
    """A built and closed outbox, with every row as SQLite reads it before any damage."""
    db = tmp_path / "outbox.db"
    build(db).stop()
    return db, everything(db)


def everything(db: Path) -> Rows:
    """Every row as SQLite reads it (the oracle), by (class, seq)."""
    return {
        (k, seq): (topic, payload)
        for k in Klass
        for seq, topic, payload in query(db, f"SELECT seq, topic, payload FROM m{int(k)}")
    }


def published(db: Path) -> Rows:
    """What the uplink would publish: every row through OutboxReader (checked)."""
    reader = OutboxReader(db)
    try:
        return {
            (m.klass, m.seq): (m.topic, m.payload) for k in Klass for m in reader.page(k, 0, None, 1_000_000)
        }
    finally:
        reader.close()


def leaves(db: Path, table: str) -> list[tuple[int, int]]:
    """(page, rows on it) of a table's leaf pages, from SQLite's own dbstat."""
    return query(
        db, "SELECT pageno, ncell FROM dbstat WHERE name=? AND pagetype='leaf' ORDER BY pageno", table
    )


def page_size(db: Path) -> int:
    return int(scalar(db, "PRAGMA page_size"))


@contextmanager
def reopened(db: Path) -> Iterator[tuple[OutboxStore, Rows]]:
    """The store opened on `db` (salvaging it if need be) and what it publishes; closed after."""
    store = OutboxStore(db)
    try:
        yield store, published(db)
    finally:
        store.close(clean=True)


def scribble_page(db: Path, page: int, seed: int) -> None:
    """Overwrite database page `page` (1-based) with random bytes."""
    size = page_size(db)
    data = bytearray(db.read_bytes())
    data[(page - 1) * size : page * size] = random.Random(seed).randbytes(size)
    db.write_bytes(bytes(data))


def assert_salvaged(store: OutboxStore, before: Rows, after: Rows, lost: int) -> None:
    """Every row that came through is byte-identical to the original with the same seq, and the
    report's counts are exactly what was lost."""
    report = store.report.salvage
    assert report is not None and store.report.quarantined_to is not None
    for key, value in after.items():
        assert before[key] == value, key
    missing = set(before) - set(after)
    assert len(missing) == lost, sorted(missing)[:10]
    body = store.report.event_body()
    assert body["rows_recovered"] == len(after) == len(before) - lost
    assert body["rows_lost"] == lost
    assert body["moved_to"] == store.report.quarantined_to
    # The lost seqs are exactly covered by the reported ranges.
    ranges = body["seq_ranges_lost"]
    for klass, seq in missing:
        assert any(a <= seq <= b for a, b in ranges[klass.label]), (klass, seq, ranges)
    json.dumps(body)  # it goes into an event as it is


def test_a_random_page_loses_exactly_the_rows_on_it(tmp_path: Path) -> None:
    db, before = built(tmp_path)
    pages = leaves(db, "m0")
    victim, on_it = pages[len(pages) // 2]
    scribble_page(db, victim, 19)
    with reopened(db) as (store, after):
        assert on_it > 5
        assert_salvaged(store, before, after, lost=on_it)
        # Alarms and events were elsewhere: all of them came through.
        assert sum(1 for k, _ in after if k == Klass.ALARM) == 6
        # New messages go above everything the bad file handed out.
        w = OutboxWriter(store, ENC, SystemClock(), OutboxLimits(commit_window_s=0.01))
        assert w.last_seq > max(seq for _, seq in before)


def test_a_random_interior_page_loses_nothing(tmp_path: Path) -> None:
    db, before = built(tmp_path)
    conn = sqlite3.connect(db)
    (interior,) = conn.execute(
        "SELECT pageno FROM dbstat WHERE name='m0' AND pagetype='internal' ORDER BY pageno LIMIT 1"
    ).fetchone()
    conn.close()
    scribble_page(db, interior, 7)
    with reopened(db) as (store, after):
        assert_salvaged(store, before, after, lost=0)


def test_a_zeroed_header_loses_nothing(tmp_path: Path) -> None:
    db, before = built(tmp_path)
    data = bytearray(db.read_bytes())
    data[:100] = bytes(100)
    db.write_bytes(bytes(data))
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(db).execute("SELECT COUNT(*) FROM m0").fetchone()  # SQLite alone: nothing
    with reopened(db) as (store, after):
        assert_salvaged(store, before, after, lost=0)


def test_a_truncated_file_loses_exactly_the_rows_past_the_cut(tmp_path: Path) -> None:
    db, before = built(tmp_path)
    pages = leaves(db, "m0")
    cut_page = pages[2 * len(pages) // 3][0]
    size = page_size(db)
    # Later pages of other tables hold rows too: count every table's leaves past the cut.
    lost = sum(n for t in ("m0", "m1", "m2", "m3") for p, n in leaves(db, t) if p >= cut_page)
    data = db.read_bytes()
    db.write_bytes(data[: (cut_page - 1) * size + 100])  # 100 bytes into the cut page: its header only
    with reopened(db) as (store, after):
        assert lost > 20
        assert_salvaged(store, before, after, lost=lost)


def test_a_damaged_wal_frame_does_not_lose_the_transactions_after_it(tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    db = live / "outbox.db"
    build(db, telemetry=200).stop()
    w = OutboxWriter(OutboxStore(db), ENC, SystemClock(), OutboxLimits(commit_window_s=0.01))
    w.start()
    try:
        for i in range(12):  # 12 transactions in the WAL, each rewriting the alarm table's page
            w.submit(Event("door-1", "door_forced", 1_800_000_000_000 + i, {"i": i}, "alarm"))
            assert w.flush()
        before = everything(db)
        conn = sqlite3.connect(db)  # the live file (a connection to the copy would checkpoint it)
        (alarm_root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='m3'").fetchone()
        conn.close()
        # What a kill -9 leaves on the disk: the file and its WAL, not checkpointed.
        crashed = tmp_path / "crashed"
        crashed.mkdir()
        for suffix in ("", "-wal"):
            shutil.copy(str(db) + suffix, str(crashed / "outbox.db") + suffix)
    finally:
        w.stop()
    db = crashed / "outbox.db"
    size = struct.unpack_from(">H", db.read_bytes(), 16)[0]  # from the header: no connection
    wal = bytearray(Path(str(db) + "-wal").read_bytes())
    frames = [
        (off, struct.unpack_from(">I", wal, off)[0]) for off in range(32, len(wal) - size - 23, 24 + size)
    ]
    first = next(off for off, pgno in frames if pgno == alarm_root)  # the first transaction's alarm page
    wal[first + 24 + 1000 : first + 24 + 1016] = random.Random(3).randbytes(16)
    Path(str(db) + "-wal").write_bytes(bytes(wal))
    # SQLite alone silently stops at the bad frame: the last 11 alarms would be gone.
    probe = tmp_path / "probe"
    probe.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(str(db) + suffix, str(probe / "outbox.db") + suffix)
    assert len(everything(probe / "outbox.db")) < len(before)
    with reopened(db) as (store, after):
        assert_salvaged(store, before, after, lost=0)
        assert store.report.salvage is not None and store.report.salvage.wal_frames_damaged == 1
        assert "WAL is damaged" in (store.report.quarantine_reason or "")


def test_sixteen_unaligned_bytes_in_a_row_are_never_published(tmp_path: Path) -> None:
    db, before = built(tmp_path)
    (victim_key, (_, payload)) = sorted(before.items())[1234]
    data = bytearray(db.read_bytes())
    at = data.find(payload)
    assert at > 0 and data.find(payload, at + 1) == -1
    data[at + 5 : at + 21] = random.Random(5).randbytes(16)  # unaligned, inside the payload
    db.write_bytes(bytes(data))
    assert sqlite3.connect(db).execute("PRAGMA quick_check").fetchone() == ("ok",)  # SQLite sees nothing
    w = OutboxWriter(OutboxStore(db), ENC, SystemClock(), OutboxLimits(commit_window_s=0.01))
    w.start()
    try:
        assert w.store.report.quarantined_to is None
        after = published(db)  # the uplink's read: the bad row is skipped and reported
        assert set(before) - set(after) == {victim_key}
        assert all(before[k] == v for k, v in after.items() if k in before)
        # the only new rows the writer may have committed meanwhile are its report of the bad row
        assert all(t.endswith("outbox_row_corrupt") for k, (t, _) in after.items() if k not in before)
        assert w.flush() and w.flush()
        snap = asdict(w.report())
        assert snap["dropped"] == {f"{victim_key[0].label}.corrupt": 1}
        assert snap["corrupt_rows"] == 1
        events = [
            json.loads(p) for (k, _), (t, p) in published(db).items() if t.endswith("outbox_row_corrupt")
        ]
        assert len(events) == 1 and events[0]["attrs"]["seqs"] == {victim_key[0].label: [victim_key[1]]}
        assert victim_key not in everything(db)  # deleted, so it is not counted again
    finally:
        w.stop()


def test_a_schema_1_outbox_is_migrated_and_its_rows_sealed(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    conn = sqlite3.connect(db)
    for t in ("m0", "m1", "m2", "m3"):
        conn.execute(
            f"CREATE TABLE {t} (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL, "
            "created_ms INTEGER NOT NULL, records INTEGER NOT NULL)"
        )
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID")
    conn.executemany(
        "INSERT INTO m2 VALUES(?, ?, ?, 1, 1)",
        [(i, f"lintel/s/g/event/x/{i}", json.dumps({"seq": i}).encode()) for i in range(1, 51)],
    )
    conn.execute("INSERT INTO meta VALUES('last_seq', 50)")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    store = OutboxStore(db)
    try:
        assert len(published(db)) == 50
        nulls = sqlite3.connect(db).execute("SELECT COUNT(*) FROM m2 WHERE crc IS NULL").fetchone()
        assert nulls == (0,)
    finally:
        store.close(clean=True)


def test_delivered_rows_on_free_pages_do_not_come_back(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    w = build(db)
    delivered = [(Klass.TELEMETRY, seq, 0) for (k, seq) in everything(db) if k == Klass.TELEMETRY][:1500]
    w.ack(delivered)  # their pages go to the freelist, with the old rows still readable on them
    assert w.flush()
    w.stop()
    before = everything(db)
    conn = sqlite3.connect(db)
    (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    conn.close()
    pages = leaves(db, "m0")
    victim, on_it = pages[len(pages) // 2]
    scribble_page(db, victim, 23)
    with reopened(db) as (store, after):
        assert free > 10
        assert_salvaged(store, before, after, lost=on_it)  # and nothing delivered is back
