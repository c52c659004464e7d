"""The replay contract (README "Replay contract", gateway/commands/replay.py), clause by clause, on the
real router with real Ed25519 keys and a real state.db; the clock is our ManualClock and the time-sync
status our own `SettableSync`. The same attack against a real `lintel run` under a real clock reset
is in tests/test_replay_process.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from gateway.core.clock import SANE_EPOCH_MS
from tests.test_command_auth import OFFICE, Rig, config_toml, signed_by


def _pulse(rig: Rig, **kw: Any) -> dict[str, Any]:
    return signed_by(OFFICE, "office", rig.body("door_pulse", {"door": "lobby"}, **kw))


def _ping(rig: Rig) -> dict[str, Any]:
    return signed_by(OFFICE, "office", rig.body("ping"))


def _outcome(result: dict[str, Any] | None) -> str:
    assert result is not None
    return result["outcome"] if result["outcome"] == "ok" else result["code"]


def _pulses(rig: Rig) -> int:
    return sum(1 for name, _args, _ctx in rig.ran if name == "door_pulse")


def test_captured_pulse_after_its_nonce_is_pruned_and_the_clock_reset_is_refused(tmp_path: Path) -> None:
    """Issue 27 point 1: capture, prune by a later command, restart with the clock at t0 + 60 s."""
    rig = Rig(tmp_path)
    t0 = rig.clock.time_ms()
    captured = _pulse(rig)
    assert _outcome(rig.send(captured)) == "ok"
    rig.clock.advance(405)
    assert _outcome(rig.send(captured)) == "expired"
    assert _outcome(rig.send(_ping(rig))) == "ok"  # a later command retires the captured nonce
    assert captured["nonce"] not in rig.router.guard.seen
    rig.store.close()  # type: ignore[union-attr]

    again = Rig(tmp_path, start_ms=t0 + 60_000)  # restarted, the clock set back (NTP spoof, no RTC)
    assert _outcome(again.send(captured)) == "clock_behind"
    assert _pulses(again) == 0
    # Once the clock is within max_skew_s of the mark it is judged again: expired, never executed.
    again.clock.set_time_ms(t0 + 405_000 - 29_000)
    assert _outcome(again.send(captured)) == "expired"
    assert _pulses(again) == 0


def test_refused_while_the_clock_is_behind_the_mark_and_served_once_it_is_not(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    t1 = rig.clock.time_ms()
    assert _outcome(rig.send(_pulse(rig))) == "ok"
    rig.clock.set_time_ms(t1 - 120_000)  # two minutes back: beyond max_skew_s (30 s)
    fresh = _pulse(rig)  # dated by the (wrong) clock, as a sender on the same NTP would
    result = rig.send(fresh)
    assert _outcome(result) == "clock_behind"
    assert "120 s earlier" in result["reason"]  # type: ignore[index]
    assert rig.router.report().refusals == {"clock_behind": 1}
    rig.clock.set_time_ms(t1 - 20_000)  # within max_skew_s of the mark: not behind
    assert _outcome(rig.send(_pulse(rig))) == "ok"
    assert _pulses(rig) == 2
    # The refused command's nonce was not spent: a sender may send it again once it is fresh.
    rig.clock.set_time_ms(t1 - 120_000 + 1_000)
    rig.router.guard.marks.clear()  # (only to reach the nonce check: the mark is ahead of this clock)
    assert _outcome(rig.send(fresh)) == "ok"


def test_the_mark_survives_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    t1 = rig.clock.time_ms()
    assert _outcome(rig.send(_ping(rig))) == "ok"
    rig.store.close()  # type: ignore[union-attr]
    again = Rig(tmp_path, start_ms=t1 - 3_600_000)
    assert _outcome(again.send(_ping(again))) == "clock_behind"


def test_refused_while_the_system_clock_is_unsynchronised_and_served_once_it_is(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.sync.synced = False
    doc = _pulse(rig)
    result = rig.send(doc)
    assert _outcome(result) == "clock_unsynced" and "timedatectl" in result["reason"]  # type: ignore[index]
    assert _pulses(rig) == 0
    rig.sync.synced = True
    assert _outcome(rig.send(doc)) == "ok"  # the refusal spent no nonce
    assert _pulses(rig) == 1


def test_the_local_socket_is_served_while_the_clock_is_unsynced_or_behind(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    t1 = rig.clock.time_ms()
    assert _outcome(rig.send(rig.body("ping"), origin="local")) == "ok"
    rig.sync.synced = False
    assert _outcome(rig.send(rig.body("ping"), origin="local")) == "ok"
    rig.clock.set_time_ms(t1 - 600_000)
    assert _outcome(rig.send(rig.body("ping"), origin="local")) == "ok"
    assert _outcome(rig.send(_ping(rig))) == "clock_unsynced"  # remote: still refused


def test_a_retired_nonce_stays_refused_when_max_age_grows(tmp_path: Path) -> None:
    """The floor: a command older than what its sender's later ones retired is expired, whatever
    max_age_s becomes (a restart with a longer window must not reopen it)."""
    rig = Rig(tmp_path)
    captured = _pulse(rig)
    assert _outcome(rig.send(captured)) == "ok"
    rig.clock.advance(400)
    assert _outcome(rig.send(_ping(rig))) == "ok"
    assert captured["nonce"] not in rig.router.guard.seen
    rig.store.close()  # type: ignore[union-attr]
    longer = config_toml().replace("max_per_minute = 120", "max_per_minute = 120\nmax_age_s = 3600")
    again = Rig(tmp_path, longer, start_ms=rig.clock.time_ms())
    assert again.router.guard.max_age_ms == 3_600_000
    assert _outcome(again.send(captured)) == "expired"
    assert _pulses(again) == 0


def test_marks_are_per_key(tmp_path: Path) -> None:
    """One key's mark does not refuse another key: the night guard never sent, so has no mark."""
    from tests.test_command_auth import GUARD

    rig = Rig(tmp_path)
    t1 = rig.clock.time_ms()
    assert _outcome(rig.send(_ping(rig))) == "ok"
    rig.clock.set_time_ms(t1 - 120_000)
    assert _outcome(rig.send(_ping(rig))) == "clock_behind"
    assert _outcome(rig.send(signed_by(GUARD, "night-guard", rig.body("ping")))) == "ok"


def test_nonce_rows_of_the_previous_version_are_kept_as_replayed(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    doc = _ping(rig)
    rig.store.close()  # type: ignore[union-attr]
    with sqlite3.connect(tmp_path / "state.db") as db:  # a row as the previous version wrote it
        db.execute("INSERT INTO state VALUES ('command_nonce', ?, ?)", (doc["nonce"], str(doc["ts_ms"])))
    again = Rig(tmp_path, start_ms=rig.clock.time_ms())
    assert _outcome(again.send(doc)) == "replayed"


def test_clock_unset_still_refuses_first(tmp_path: Path) -> None:
    rig = Rig(tmp_path, start_ms=SANE_EPOCH_MS - 1)
    assert _outcome(rig.send(_ping(rig))) == "clock_unset"
