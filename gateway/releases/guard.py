"""The boot guard: run (as root) before every start of the service, from the committed release.

    ExecStartPre=+/opt/lintel/committed/bin/lintel-guard -c /etc/lintel/config.toml
    (the launcher runs `python -m gateway.cli.release_tools guard`)

It makes the `current` link follow the update state (`state.py`), whatever step a power cut or a
kill -9 interrupted:
  probation           count this start; past `max_boots` starts the new release never passed
                      probation (it dies before it can report) -> roll back; else run it. A start
                      while another daemon holds the state folder is not counted: it will exit 75
                      (busy) through no fault of the release
  rollback_requested  the new release failed its probation and asked -> roll back
  rolled_back         run the previous release (finishes a rollback cut short)
  committed           run the new release and move `committed` to it
The state file is written before a link moves, so the state always says where the links are going.
It runs from the committed release so that a new release too broken to import is still rolled back.
Standard library only (it must not depend on what it guards). Exits 0 unless no release exists.
"""

from __future__ import annotations

import fcntl
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gateway.releases.state import (
    COMMITTED,
    PROBATION,
    ROLLBACK_REQUESTED,
    ROLLED_BACK,
    read_state,
    write_state,
)
from gateway.releases.store import ReleaseStore

DEFAULT_CONFIG = Path("/etc/lintel/config.toml")
DEFAULT_STATE_DIR = Path("/var/lib/lintel")
# gateway.runtime.state_lock's lock file (the guard imports nothing of the daemon: standard library
# only); tests/test_releases.py holds the daemon's real lock to prove the two agree.
LOCK_NAME = "lintel.lock"


@dataclass(frozen=True, slots=True)
class Verdict:
    run: str | None  # the release this start runs; None: there is none
    did: str  # one line for the journal


def decide(store: ReleaseStore, state_dir: Path) -> Verdict:
    """Bring the links in line with the update state, counting this start. Idempotent per start."""
    store.remove_partials()
    state = read_state(state_dir)
    current, committed = store.current(), store.committed()
    if state is not None and state.phase == PROBATION:
        if store.info(state.to_version) is None:
            state = state.but(phase=ROLLED_BACK, reason=f"release {state.to_version} is not installed")
        elif _held_by_a_daemon(state_dir):
            if current != state.to_version:
                store.switch(state.to_version)
            return Verdict(
                state.to_version,
                f"probation of {state.to_version}: start not counted (state folder busy: another lintel "
                f"daemon holds {state_dir / LOCK_NAME})",
            )
        else:
            boots = state.boots + 1
            if boots > state.max_boots:
                state = state.but(
                    phase=ROLLED_BACK,
                    boots=boots - 1,
                    reason=f"release {state.to_version} started {boots - 1} times without passing "
                    f"probation (it stopped or was stopped before {state.probation_s:g} s of health)",
                )
            else:
                write_state(state_dir, state.but(boots=boots))
                if current != state.to_version:
                    store.switch(state.to_version)
                return Verdict(
                    state.to_version, f"probation of {state.to_version}: start {boots} of {state.max_boots}"
                )
        write_state(state_dir, state)
    elif state is not None and state.phase == ROLLBACK_REQUESTED:
        state = state.but(phase=ROLLED_BACK)
        write_state(state_dir, state)
    if state is not None and state.phase == ROLLED_BACK and store.info(state.from_version) is not None:
        if current != state.from_version:
            store.switch(state.from_version)
            return Verdict(state.from_version, f"rolled back to {state.from_version}: {state.reason}")
        return Verdict(current, f"running {current} (rolled back from {state.to_version})")
    if state is not None and state.phase == COMMITTED and store.info(state.to_version) is not None:
        if current != state.to_version:
            store.switch(state.to_version)
        if committed != state.to_version:
            store.commit(state.to_version)
            return Verdict(state.to_version, f"{state.to_version} passed probation: committed")
        current = state.to_version
    if current is None:  # no link, or it names a release that is gone: the committed one, else the newest
        installed = store.versions()
        fallback = committed or (installed[-1] if installed else None)
        if fallback is None:
            return Verdict(None, f"no release installed under {store.releases}")
        store.switch(fallback)
        return Verdict(fallback, f"current link was missing or broken: running {fallback}")
    if committed is None:
        store.commit(current)
    return Verdict(current, f"running {current}")


def _held_by_a_daemon(state_dir: Path) -> bool:
    """True when a daemon holds the state folder's lock: the start that follows is refused."""
    try:
        fd = os.open(state_dir / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # no lock file: no daemon has run on this folder yet
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released at once, with the descriptor
    except BlockingIOError:
        return True
    except OSError:  # no answer either way: count the start, as before
        return False
    finally:
        os.close(fd)
    return False


def state_dir_of(config: Path) -> Path:
    """`[gateway] state_dir` of the config (as the daemon resolves it); the default if unreadable."""
    try:
        doc = tomllib.loads(config.read_text())
        name = doc["gateway"]["state_dir"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):  # a hostile file nests deeply
        return DEFAULT_STATE_DIR
    path = Path(str(name)).expanduser()
    return path if path.is_absolute() else config.parent / path
