"""Versions of the data at rest (gateway/releases/formats.py): each store checks its file's format at
open, never migrates it while this release is on probation, and refuses a newer one untouched.
The whole path across real releases and a rollback: tests/test_release_updates.py
(`test_a_new_outbox_format_waits_for_probation_…`)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gateway.config.deploy_files import DeployFiles
from gateway.config.overlay import overlay_body
from gateway.lanes.faces.gallery import Gallery, GalleryError, Resident
from gateway.releases.formats import MIGRATE, OPEN, Format, FormatError, FormatGate
from gateway.releases.state import COMMITTED, PROBATION, ROLLBACK_REQUESTED, UpdateState, write_state
from gateway.storage.outbox.store import OutboxStore, OutboxUnavailable
from gateway.storage.state import StateStore

ON_PROBATION = FormatGate("2.0.0", on_probation=True)
FREE = FormatGate("2.0.0", on_probation=False)


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def set_user_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA user_version={version}")
    finally:
        conn.close()


def test_the_gate_follows_the_update_state_of_this_release(tmp_path: Path) -> None:
    assert FormatGate.at(tmp_path, "2.0.0").may_migrate  # no update state: a plain install
    for phase, to_version, may in (
        (PROBATION, "2.0.0", False),
        (ROLLBACK_REQUESTED, "2.0.0", False),
        (COMMITTED, "2.0.0", True),
        (PROBATION, "3.0.0", True),  # another release is on probation, not this one
    ):
        write_state(tmp_path, UpdateState(phase, "1.0.0", to_version, 0, 10, 3))
        assert FormatGate.at(tmp_path, "2.0.0").may_migrate is may, (phase, to_version)


def test_the_gate_opens_migrates_or_refuses_and_names_the_fix() -> None:
    fmt = Format("outbox", 4, runs_on=3)
    assert FREE.check(fmt, 4, "f") == OPEN and ON_PROBATION.check(fmt, 4, "f") == OPEN
    assert FREE.check(fmt, 3, "f") == MIGRATE
    assert ON_PROBATION.check(fmt, 3, "f") == OPEN  # runs on it until it commits
    with pytest.raises(FormatError, match="may not migrate it while on probation"):
        ON_PROBATION.check(fmt, 2, "the outbox x.db")
    with pytest.raises(
        FormatError, match=r"the outbox x\.db is in outbox format 5, written by a newer Lintel"
    ):
        FREE.check(fmt, 5, "the outbox x.db")
    assert (FREE.writes(fmt), ON_PROBATION.writes(fmt)) == (4, 3)
    with pytest.raises(ValueError):
        Format("x", 1, runs_on=2)


def test_the_outbox_refuses_a_newer_format_and_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    OutboxStore(db, FREE).close(clean=True)
    assert user_version(db) == 3
    set_user_version(db, 9)
    before = db.read_bytes()
    with pytest.raises(OutboxUnavailable, match="outbox format 9, written by a newer Lintel") as caught:
        OutboxStore(db, FREE)
    assert isinstance(caught.value.__cause__, FormatError)  # `lintel run`: exit 78, or a rollback
    assert db.read_bytes() == before


def test_the_state_store_is_stamped_only_outside_probation_and_refuses_a_newer_format(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)  # a file from before versions (user_version 0), with a row
    conn.execute("CREATE TABLE state (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
                 "PRIMARY KEY (ns, key)) WITHOUT ROWID")  # fmt: skip
    conn.execute("""INSERT INTO state VALUES ('alarms', 'a1', '{"open": true}')""")
    conn.commit()
    conn.close()
    on_probation = StateStore(path, gate=ON_PROBATION)
    assert on_probation.load("alarms") == {"a1": {"open": True}}
    on_probation.close()
    assert user_version(path) == 0  # the older release would find it as it left it
    committed = StateStore(path, gate=FREE)
    assert committed.load("alarms") == {"a1": {"open": True}}
    committed.close()
    assert user_version(path) == 1
    fresh = tmp_path / "probation" / "state.db"
    StateStore(fresh, gate=ON_PROBATION).close()  # a new file made on probation: the older format
    assert user_version(fresh) == 0
    set_user_version(path, 7)
    for read_only in (False, True):
        with pytest.raises(FormatError, match="state format 7, written by a newer Lintel"):
            StateStore(path, read_only=read_only, gate=FREE)
    assert user_version(path) == 7


def test_the_gallery_seals_old_plaintext_rows_only_after_probation(tmp_path: Path) -> None:
    db, key = tmp_path / "faces.db", tmp_path / "faces.key"
    g = Gallery(db, key, create=True, gate=FREE)
    g.enroll(Resident("r-1", "1-0101", "caretaker", "form 1", 5), [np.ones(4, np.float32)], "m", [{}], 0)
    # an older version's file: unstamped, a resident's details in plaintext
    g.db.execute("INSERT INTO residents VALUES ('r-8', '8-0404', 'janitor', 'form 88', 0, '[]', '[]', 0)")
    g.db.execute("PRAGMA user_version=0")
    g.close()
    trying = Gallery(db, key, gate=ON_PROBATION)
    assert trying.resident("r-8").unit == "8-0404"  # type: ignore[union-attr]
    assert trying.db.execute("SELECT typeof(unit) FROM residents WHERE id='r-8'").fetchone() == ("text",)
    tables = {n for (n,) in trying.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "tags" in tables  # made even on probation: a table the older release never reads
    trying.close()
    assert user_version(db) == 0
    committed = Gallery(db, key, gate=FREE)
    assert committed.db.execute("SELECT DISTINCT typeof(unit) FROM residents").fetchall() == [("blob",)]
    committed.close()
    assert user_version(db) == 2  # sealed (1) and with the tags table (2)
    set_user_version(db, 3)
    with pytest.raises(GalleryError, match="gallery format 3, written by a newer Lintel"):
        Gallery(db, key, gate=FREE)


def test_deployment_files_carry_their_format_and_a_newer_one_is_read_as_absent(tmp_path: Path) -> None:
    files = DeployFiles(tmp_path, FREE)
    files.mark_handled(4)
    doc = json.loads((tmp_path / "deploy" / "handled.json").read_text())
    assert doc == {"format": 1, "version": 4}
    assert files.handled_version() == 4
    (tmp_path / "deploy" / "handled.json").write_text(json.dumps({"format": 2, "version": 9}))
    assert files.handled_version() == 0  # the safe side, as for an unreadable file
    assert json.loads((tmp_path / "deploy" / "handled.json").read_text())["version"] == 9  # left alone


def test_the_overlay_names_its_format_and_a_newer_one_is_not_applied(tmp_path: Path) -> None:
    assert overlay_body(b"# lintel overlay format 1\n[log]\nlevel = 'debug'\n", tmp_path) == (
        b"[log]\nlevel = 'debug'\n"
    )
    assert overlay_body(b"[log]\n", tmp_path) == b"[log]\n"  # written before formats: format 1
    with pytest.raises(FormatError, match="overlay format 2"):
        overlay_body(b"# lintel overlay format 2\n[log]\n", tmp_path)


def test_a_new_outbox_made_on_probation_is_in_a_format_the_previous_release_reads(tmp_path: Path) -> None:
    """`_DDL` creates format DDL_VERSION; a file made on probation (first start, or after a corrupt
    one was moved aside) is stamped `runs_on`: the DDL must not be newer than that."""
    from gateway.storage.outbox import schema

    assert schema.FORMAT.runs_on >= schema.DDL_VERSION
    db = tmp_path / "outbox.db"
    OutboxStore(db, ON_PROBATION).close(clean=True)
    assert user_version(db) == schema.FORMAT.runs_on
