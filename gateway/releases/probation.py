"""Release probation, inside the new release's daemon: commit it, or ask the guard to roll it back.

This is the across-process probation of a new *release* (the config deployments of
`gateway/config` have their own, inside one process). When the update state says this version is on
probation, `ReleaseProbation.run` checks the daemon's vitals every `CHECK_S`:
  - a component parked as failed (its restart budget spent)  -> roll back at once, saying which;
  - at `probation_s` after this start: the daemon is running (READY was sent), the broker link is
    connected (when a broker is configured) and every component shows progress (the systemd
    watchdog is being fed)  -> committed; otherwise roll back, saying what was missing.
    Under a systemd watchdog the probation lasts at least 1.5 x WatchdogSec: only a release that
    outlived a whole watchdog interval has shown that its pets reach systemd (a shorter probation
    could commit a release that systemd then kills every interval, with nothing to roll back to).
Rolling back = the state file says `rollback_requested` (with why), then the daemon stops cleanly
and exits `EXIT_ROLLBACK`; systemd restarts it (Restart=on-failure) and the boot guard switches to
the previous release. A release that dies before it can do any of this is caught by the guard's
boot counter.

Whichever release runs reports the outcome once, through the outbox (so it survives outages and
kill -9 like any event): `updated` (info), `update_rolled_back` or `update_failed` (warning; the
package was refused or could not be installed, nothing was switched), source `gateway`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core import Clock, Event
from gateway.releases.state import (
    COMMITTED,
    FAILED,
    FINISHED,
    PROBATION,
    ROLLBACK_REQUESTED,
    UpdateState,
    read_state,
    write_state,
)

log = logging.getLogger("lintel.release")

CHECK_S = 1.0
WATCH_S = 5.0  # how often a running release looks for an outcome to report (a failed remote update)
# Not 78 (RestartPreventExitStatus: systemd would not start the service again, and the guard would
# never roll back), and not 75 (EX_TEMPFAIL: "try again", what `lintel run` exits when another daemon
# holds the state folder or a file may become usable): a rollback must read as what it is in the
# journal and to whatever watches the exit, since nothing about the machine is wrong. Outside the
# sysexits range (64-78) and Python's own 1 and 2.
EXIT_ROLLBACK = 10
GATEWAY_SOURCE = "gateway"


@dataclass(frozen=True, slots=True)
class Vitals:
    """What probation asks of the running daemon."""

    running: bool  # READY=1 was sent and no stop is under way
    broker: str  # the uplink's state ("connected", "backoff", …) or "disabled" with no broker
    stalled: tuple[str, ...]  # components without progress (the watchdog is not being fed)
    failed: tuple[str, ...]  # components parked as failed


def outcome_event(state: UpdateState, ts_ms: int) -> Event:
    attrs: dict[str, Any] = {
        "from_version": state.from_version,
        "to_version": state.to_version,
        "origin": state.origin,
        "command_id": state.command_id,
        "boots": state.boots,
    }
    if state.phase == COMMITTED:
        return Event(GATEWAY_SOURCE, "updated", ts_ms, {**attrs, "probation_s": state.probation_s}, "info")
    kind = "update_failed" if state.phase == FAILED else "update_rolled_back"
    return Event(GATEWAY_SOURCE, kind, ts_ms, {**attrs, "reason": state.reason}, "warning")


def abandon(state_dir: Path, version: str, why: str) -> bool:
    """A release on probation that cannot even start (its config refused: exit 78 would stop
    systemd from restarting it, and so from ever rolling back): ask the guard for a rollback.
    True if it was on probation (the caller then exits EXIT_ROLLBACK)."""
    state = read_state(state_dir)
    if state is None or state.phase != PROBATION or state.to_version != version:
        return False
    write_state(state_dir, state.but(phase=ROLLBACK_REQUESTED, reason=why))
    return True


class ReleaseProbation:
    def __init__(self, state_dir: Path, version: str, clock: Clock, watchdog_s: float | None = None) -> None:
        self.state_dir = state_dir
        self.version = version
        self.clock = clock
        self.watchdog_s = watchdog_s  # systemd's WatchdogSec (WATCHDOG_USEC), None without one
        self.state = read_state(state_dir)
        self.verdict: str | None = None  # "committed" / "rollback": what this process decided

    @property
    def on_probation(self) -> bool:
        s = self.state
        return s is not None and s.phase == PROBATION and s.to_version == self.version

    def report_outcome(self, emit: Callable[[Event], bool]) -> None:
        """Emit the finished update's outcome once, from the release it left running."""
        s = self.state
        if s is None or s.reported or s.phase not in FINISHED:
            return
        if s.running_version != self.version:
            return  # the other release must say it (it is the one running)
        if emit(outcome_event(s, self.clock.time_ms())):
            self.state = s.but(reported=True)
            write_state(self.state_dir, self.state)

    @property
    def needed_s(self) -> float:
        """How long this release must stay healthy: `probation_s`, and a watchdog interval and a half."""
        assert self.state is not None
        return max(self.state.probation_s, 1.5 * self.watchdog_s if self.watchdog_s else 0.0)

    def judge(self, vitals: Vitals, elapsed_s: float) -> str | None:
        """None while undecided; "" when it passed; else why it failed."""
        assert self.state is not None
        if vitals.failed:
            return f"component failed during probation: {', '.join(vitals.failed)}"
        if elapsed_s < self.needed_s:
            return None
        missing = []
        if not vitals.running:
            missing.append("the daemon was not running (no READY)")
        if vitals.broker not in ("connected", "disabled"):
            missing.append(f"not connected to the broker (uplink {vitals.broker})")
        if vitals.stalled:
            missing.append(f"no progress from {', '.join(vitals.stalled)} (watchdog not fed)")
        return "; ".join(missing) + f" after {self.needed_s:g} s of probation" if missing else ""

    async def run(
        self, vitals: Callable[[], Vitals], emit: Callable[[Event], bool], roll_back: Callable[[], None]
    ) -> None:
        """Report a finished update; on probation, judge this release. Then keep watching the state
        file: an outcome the outbox refused is offered again, and the root runner records a remote
        update that failed before any switch (`failed`) while this release keeps running."""
        self.report_outcome(emit)
        if self.on_probation:
            await self._probation(vitals, emit, roll_back)
            if self.verdict == "rollback":
                return
        while True:
            await asyncio.sleep(WATCH_S)
            self.state = read_state(self.state_dir)
            self.report_outcome(emit)

    async def _probation(
        self, vitals: Callable[[], Vitals], emit: Callable[[Event], bool], roll_back: Callable[[], None]
    ) -> None:
        assert self.state is not None
        log.info(
            "release %s on probation: %g s of health needed (start %d of %d)",
            self.version,
            self.needed_s,
            self.state.boots,
            self.state.max_boots,
        )
        started = self.clock.monotonic()
        while True:
            await asyncio.sleep(CHECK_S)
            why = self.judge(vitals(), self.clock.monotonic() - started)
            if why is None:
                continue
            if why == "":
                self.state = self.state.but(phase=COMMITTED, reported=False)
                write_state(self.state_dir, self.state)
                self.verdict = "committed"
                log.info("release %s passed probation: committed", self.version)
                self.report_outcome(emit)
            else:
                self.state = self.state.but(phase=ROLLBACK_REQUESTED, reason=why)
                write_state(self.state_dir, self.state)
                self.verdict = "rollback"
                log.error("release %s failed probation: %s; rolling back to %s", self.version, why,
                          self.state.from_version)  # fmt: skip
                roll_back()
            return
