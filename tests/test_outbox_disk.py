"""The outbox on a real, small filesystem (a tmpfs mounted by the test) that fills up."""

from __future__ import annotations

import contextlib
import errno
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from gateway.core import Event, Klass, Reading, SystemClock
from gateway.storage.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.storage.outbox.store import OutboxReader
from gateway.upstream.encode import Encoder, Topics

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
        while not asdict(w.report())["at_disk_floor"] and i < 1_000_000:
            for _ in range(2000):
                w.submit(Reading(f"s{i % 30}", "power_w", float(i), 1_700_000_000_000 + i))
                i += 1
            w.flush()
        assert asdict(w.report())["at_disk_floor"], "the disk floor was never reached"
        # At the floor: telemetry is refused (counted), alarms still get in.
        w.submit(Reading("s1", "power_w", 1.0, 1))
        w.submit(alarm(0))
        w.flush()
        snap = asdict(w.report())
        assert snap["dropped"]["telemetry.disk_floor"] >= 1
        assert snap["rows"]["alarm"] == 1

        # Another program takes every last byte: nothing can be written at all.
        fill(small_disk / "filler")
        for k in range(1, 21):
            w.submit(alarm(k, evidence_bytes=100_000))  # 2 MB of alarms: no reusable space holds them
        w.flush()
        snap = asdict(w.report())
        assert w.alive
        # (held_in_memory, not pending_count(): a retry under way has taken the pending list)
        assert snap["disk_full"] and snap["held_in_memory"] > 0, (
            "the disk never filled: the test proves nothing"
        )
        assert not any(key.startswith("alarm.") for key in snap["dropped"]), snap["dropped"]
        assert snap["rows"]["alarm"] + snap["held_in_memory"] == 21, "every alarm is either on disk or held"

        # Space comes back: the held alarms are committed.
        (small_disk / "filler").unlink()
        ballast.unlink()
        w.flush()
        w.flush()
        snap = asdict(w.report())
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


def _outbox_with_backlog(db: Path) -> None:
    w = OutboxWriter(
        OutboxStore(db),
        ENC,
        SystemClock(),
        OutboxLimits(commit_window_s=0.01, min_free_bytes=0, batch_max_readings=1),
    )
    w.start()
    for k in range(5):
        w.submit(alarm(k))
    for i in range(400):
        w.submit(Reading(f"s{i % 10}", "power_w", float(i), 1_700_000_000_000 + i))
    assert w.flush()
    w.stop()  # clean: SQLite deletes the -shm file, which it cannot create again on a full disk


@pytest.mark.parametrize("reserve", [True, False], ids=["with-reserve", "no-reserve"])
def test_a_full_disk_at_start_opens_and_holds_alarms_until_space_returns(
    small_disk: Path, reserve: bool
) -> None:
    db = small_disk / "outbox.db"
    _outbox_with_backlog(db)
    if not reserve:
        (small_disk / "outbox.db.reserve").unlink()  # e.g. the first start after an upgrade
    fill(small_disk / "filler")
    store = OutboxStore(db)  # used to exit 75 ("disk I/O error"), every restart
    assert store.report.quarantined_to is None, "a full disk is not corruption"
    assert (store.report.degraded is None) == reserve  # the reserve makes room for SQLite's -shm file
    w = OutboxWriter(store, ENC, SystemClock(), OutboxLimits(commit_window_s=0.01, min_free_bytes=MIB))
    w.start()
    try:
        # The backlog is readable (the uplink's reader shares the connection in exclusive mode).
        reader = OutboxReader(db)
        assert len(reader.page(Klass.ALARM, 0, None, 100)) == 5
        assert len(reader.page(Klass.TELEMETRY, 0, None, 1000)) == 400
        reader.close()
        # New alarms, and the alarm_resolved of one: never dropped, held until they fit.
        for k in range(5, 25):
            w.submit(alarm(k, evidence_bytes=100_000 if not reserve else 0))
        w.submit(Event("door-1", "alarm_resolved", 1_700_000_000_100, {"alarm_id": 3}))
        w.flush()
        snap = asdict(w.report())
        assert w.alive and snap["degraded"]
        assert not any(key.startswith(("alarm.", "event.")) for key in snap["dropped"]), snap["dropped"]
        assert snap["rows"]["alarm"] + snap["held_in_memory"] >= 20 + 5
        (small_disk / "filler").unlink()  # space returns
        w.flush()
        w.flush()
        snap = asdict(w.report())
        assert snap["rows"]["alarm"] == 25 and snap["rows"]["event"] == 1 and snap["held_in_memory"] == 0
        # What telemetry made room is counted once, under one reason, and the rest is still there.
        lost = sum(n for key, n in snap["dropped"].items() if key.startswith("telemetry."))
        assert snap["rows"]["telemetry"] + lost == 400
        assert set(snap["dropped"]) <= {"telemetry.disk_full", "telemetry.disk_floor"}
    finally:
        w.stop()


def test_counts_are_exact_through_floor_full_and_back(small_disk: Path) -> None:
    """Every record submitted is, at the end, either in the outbox or counted once as dropped."""
    db = small_disk / "outbox.db"
    w = OutboxWriter(
        OutboxStore(db),
        ENC,
        SystemClock(),
        OutboxLimits(commit_window_s=0.01, min_free_bytes=2 * MIB, batch_max_readings=20),
    )
    w.start()
    submitted = {k: 0 for k in Klass}

    def push(telemetry: int, events: int, alarms: int) -> None:
        for i in range(telemetry):
            w.submit(Reading(f"s{i % 30}", "power_w", float(i), 1_700_000_000_000 + i))
        for i in range(events):
            w.submit(Event("door-1", "door_opened", 1_700_000_000_000 + i, {"i": i}))
        for i in range(alarms):
            w.submit(alarm(i))
        submitted[Klass.TELEMETRY] += telemetry
        submitted[Klass.EVENT] += events
        submitted[Klass.ALARM] += alarms
        w.flush()

    try:
        rounds = 0
        while not asdict(w.report())["at_disk_floor"] and rounds < 500:
            push(2000, 5, 0)
            rounds += 1
        assert asdict(w.report())["at_disk_floor"]
        push(500, 20, 3)  # at the floor
        fill(small_disk / "filler")
        for _ in range(5):  # really full, several commits: nothing may be counted twice
            push(300, 10, 2)
        (small_disk / "filler").unlink()
        push(0, 0, 0)
        push(0, 0, 0)
        final = asdict(w.report())
    finally:
        w.stop()
    snap_conn = sqlite3.connect(db)
    on_disk = {
        k: snap_conn.execute(f"SELECT COALESCE(SUM(records), 0) FROM m{int(k)}").fetchone()[0] for k in Klass
    }
    meta = dict(snap_conn.execute("SELECT key, value FROM meta").fetchall())
    snap_conn.close()
    dropped = {k: sum(v for key, v in meta.items() if key.startswith(f"drop.{k.label}.")) for k in Klass}
    for k in Klass:
        assert on_disk[k] + dropped[k] == submitted[k], (k, on_disk[k], dropped[k], submitted[k], meta)
    assert dropped[Klass.ALARM] == 0 and dropped[Klass.EVENT] == 0
    # Both paths ran (the test proves something): the floor, and a disk with no room at all.
    assert final["dropped"]["telemetry.disk_floor"] > 0 and final["dropped"]["telemetry.disk_full"] > 0
    assert final["dropped"] == {
        f"{k.label}.{r}": v
        for key, v in meta.items()
        if key.startswith("drop.")
        for k, r in [(Klass.parse(key.split(".")[1]), key.split(".")[2])]
    }


def test_state_store_on_a_full_disk_keeps_rows_in_memory_and_writes_them_later(small_disk: Path) -> None:
    from gateway.storage.state import StateStore

    path = small_disk / "state.db"
    store = StateStore(path)
    store.save("alarms", {"1": {"open": True}})
    store.close()
    fill(small_disk / "filler")
    store = StateStore(path)  # opens (exclusive mode) instead of raising "disk I/O error"
    try:
        big = {str(i): {"open": True, "note": "x" * 2000} for i in range(2, 200)}
        store.save("alarms", big, deleted=["1"])  # must not raise: the caller is raising an alarm
        assert store.disk_full and "1" not in store.load("alarms") and len(store.load("alarms")) == 198
        (small_disk / "filler").unlink()
        store.save("alarms", {"200": {"open": True}})
        assert not store.disk_full and not store.unsaved
    finally:
        store.close()
    check = StateStore(path, read_only=True)
    assert len(check.load("alarms")) == 199 and "1" not in check.load("alarms")
    check.close()
