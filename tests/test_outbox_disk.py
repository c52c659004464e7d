"""The outbox on a real, small filesystem (a tmpfs mounted by the test) that fills up."""

from __future__ import annotations

import contextlib
import errno
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core import Event, Klass, Reading, SystemClock
from gateway.encode import Encoder, Topics
from gateway.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.outbox.store import OutboxUnavailable

MIB = 1024 * 1024
ENC = Encoder(Topics("lintel", "site-a", "gw-test"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    assert done.returncode == 0, f"this test mounts an 8 MiB tmpfs and needs root: {done.stderr}"
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> None:
    """Write until the filesystem says ENOSPC, like another program filling the disk."""
    with open(path, "wb") as fh:
        chunk = b"\0" * 65536
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        with contextlib.suppress(OSError):
            fh.close()


def alarm(i: int, evidence_bytes: int = 0) -> Event:
    return Event(
        "door-1", "door_forced", 1_700_000_000_000 + i, {"i": i, "evidence": "x" * evidence_bytes}, "alarm"
    )


def test_a_really_full_disk_keeps_alarms_and_the_writer_alive(small_disk: Path, tmp_path: Path) -> None:
    db = small_disk / "outbox.db"
    w = OutboxWriter(
        OutboxStore(db),
        ENC,
        SystemClock(),
        OutboxLimits(commit_window_s=0.01, min_free_bytes=2 * MIB, batch_max_readings=20),
    )
    w.start()
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (3 * MIB))  # another program's files, deleted later
    try:
        i = 0
        while not w.snapshot()["at_disk_floor"] and i < 1_000_000:
            for _ in range(2000):
                w.submit(Reading(f"s{i % 30}", "power_w", float(i), 1_700_000_000_000 + i))
                i += 1
            w.flush()
        assert w.snapshot()["at_disk_floor"], "the disk floor was never reached"
        # At the floor: telemetry is refused (counted), alarms still get in.
        w.submit(Reading("s1", "power_w", 1.0, 1))
        w.submit(alarm(0))
        w.flush()
        snap = w.snapshot()
        assert snap["dropped"]["telemetry.disk_floor"] >= 1
        assert snap["rows"]["alarm"] == 1

        # Another program takes every last byte: nothing can be written at all.
        fill(small_disk / "filler")
        for k in range(1, 21):
            w.submit(alarm(k, evidence_bytes=100_000))  # 2 MB of alarms: no reusable space holds them
        w.flush()
        snap = w.snapshot()
        assert w.alive
        assert snap["disk_full"] and w.pending_count() > 0, "the disk never filled: the test proves nothing"
        assert not any(key.startswith("alarm.") for key in snap["dropped"]), snap["dropped"]
        assert snap["rows"]["alarm"] + w.pending_count() == 21, "every alarm is either on disk or held"

        # Space comes back: the held alarms are committed.
        (small_disk / "filler").unlink()
        ballast.unlink()
        w.flush()
        w.flush()
        snap = w.snapshot()
        assert snap["rows"]["alarm"] == 21 and not snap["disk_full"]
    finally:
        w.stop()
    # The disk is full again now; check a copy, as a technician would.
    for name in ("outbox.db", "outbox.db-wal"):
        if (small_disk / name).exists():
            shutil.copy(small_disk / name, tmp_path / name)
    conn = sqlite3.connect(tmp_path / "outbox.db")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT COUNT(*) FROM m3").fetchone() == (21,)
    conn.close()


def test_a_full_disk_at_start_is_not_mistaken_for_corruption(small_disk: Path) -> None:
    db = small_disk / "outbox.db"
    w = OutboxWriter(
        OutboxStore(db), ENC, SystemClock(), OutboxLimits(commit_window_s=0.01, min_free_bytes=0)
    )
    w.start()
    for k in range(5):
        w.submit(alarm(k))
    w.flush()
    w.stop()
    before = db.read_bytes()
    fill(small_disk / "filler")
    with pytest.raises(OutboxUnavailable, match="cannot open the outbox"):
        OutboxStore(db)
    assert db.read_bytes() == before, "a healthy outbox must not be touched"
    assert not list(small_disk.glob("*.corrupt-*"))
    (small_disk / "filler").unlink()
    store = OutboxStore(db)
    assert store.report.quarantined_to is None and store.class_totals()[Klass.ALARM][0] == 5
    store.close(clean=True)
