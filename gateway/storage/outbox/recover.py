"""Opening a damaged outbox: detecting a damaged WAL, salvaging, and re-enqueueing the rows.

SQLite detects a damaged page (`PRAGMA quick_check`), but not a damaged WAL: it silently stops
reading the log at the first frame whose checksum fails, and every transaction after it is gone
without an error. So the WAL is read *before* SQLite opens the file (closing SQLite's last
connection checkpoints the valid prefix and deletes the WAL, and with it the evidence), and a WAL
with committed transactions beyond a broken frame counts as damage.

The recovered rows go into the fresh database with their original seqs (row and native) and crc,
in one transaction, with the old file's drop counters; the fresh database's `last_row` and
`last_seq` are above everything the old one handed out (its meta, its rows, and the reservation).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from gateway.storage.outbox.pages import Pages, read_header, split_pages
from gateway.storage.outbox.salvage import Row, SalvageReport, salvage
from gateway.storage.outbox.wal import scan_wal

log = logging.getLogger("lintel.outbox")


def read_wal(path: Path) -> bytes | None:
    """The WAL's bytes, read before any connection can checkpoint it away (None: no WAL)."""
    wal = Path(str(path) + "-wal")
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return None
    return data or None


def wal_damage(path: Path, wal: bytes | None) -> str | None:
    """Why the WAL counts as damaged, or None."""
    if wal is None:
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except FileNotFoundError:
        return None
    scan = scan_wal(wal, read_header(head).page_size)
    if scan is None or not scan.lost_commits:
        return None
    return (
        f"the WAL is damaged: {scan.damaged} frame(s) fail their checksum and committed transactions "
        "follow them"
    )


def salvage_file(path: Path, wal: bytes | None) -> tuple[list[Row], SalvageReport]:
    """Every readable row of `path` (+ its WAL as read before opening)."""
    data = path.read_bytes()
    header = read_header(data)
    images = split_pages(data, header.page_size)
    damaged_frames = 0
    scan = scan_wal(wal, header.page_size) if wal is not None else None
    if scan is not None:
        for pgno, image in scan.frames:
            images[pgno] = image
        damaged_frames = scan.damaged
        # The newest page 1 (from the WAL) has the current freelist, and may be intact when the
        # file's is not.
        newest = read_header(images.get(1, b""))
        if newest.valid and newest.page_size == header.page_size:
            header = newest
    pages = Pages(header, images)
    free = pages.freelist() if header.valid else set()
    return salvage(pages, free, damaged_frames)


def reinsert(
    conn: sqlite3.Connection, tables: dict[int, str], rows: list[Row], report: SalvageReport, floor_seq: int
) -> int:
    """Put the salvaged rows into the fresh database; returns its last native seq."""
    last = max(report.last_seq, floor_seq)
    meta = {k: v for k, v in report.meta.items() if k.startswith("drop.") or k == "native_seqs_dropped"}
    meta["last_seq"] = last
    meta["last_row"] = max(report.last_row, floor_seq)
    by_table: dict[str, list[tuple[int, str, bytes, int, int, int, int | None]]] = {}
    for r in rows:
        topic = r.topic.decode("utf-8", errors="replace")  # the crc held: it is the written text
        by_table.setdefault(tables[int(r.klass)], []).append(
            (r.seq, topic, r.payload, r.created_ms, r.records, r.crc, r.native_seq)
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, values in by_table.items():
            conn.executemany(
                f"INSERT OR IGNORE INTO {table}(seq, topic, payload, created_ms, records, crc, native_seq) "
                "VALUES(?,?,?,?,?,?,?)",
                values,
            )
        conn.executemany(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            list(meta.items()),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    log.warning(
        "outbox salvage: %d rows recovered with their seq, %s lost (%d damaged pages, %d damaged WAL frames)",
        sum(report.recovered.values()),
        "an unknown number" if None in report.lost.values() else sum(v or 0 for v in report.lost.values()),
        report.pages_damaged,
        report.wal_frames_damaged,
    )
    return last
