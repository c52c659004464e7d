"""The staged update's state: one small JSON file in the service's state folder.

Written by three parties, each at its own step, always whole (`durable.write_file`):
  `lintel update` (root)        stage:    phase "probation", from = the running release, to = the new one
  the boot guard (root)         each start of the service: counts boots, rolls back, catches up links
  the new release (service user) probation passed -> "committed"; failed -> "rollback_requested"
  `lintel update` (root)        the package could not be fetched, checked or installed -> "failed"
and read by every release when it starts, to report the outcome upstream once (`reported`).

The file is in the state folder because the service user may write there and nowhere under
/opt/lintel; the guard only ever switches among releases root installed, so a forged file can at most
choose between them. A file this code cannot read (corrupt, or a newer schema) is treated as "no
update in progress": the guard then runs the committed release, the safe choice.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from gateway.releases.durable import write_file

SCHEMA = "lintel.release-state/1"
FILE_NAME = "release-update.json"

PROBATION = "probation"
ROLLBACK_REQUESTED = "rollback_requested"
COMMITTED = "committed"
ROLLED_BACK = "rolled_back"
FAILED = "failed"  # never switched: the package could not be fetched, checked or installed
PHASES = (PROBATION, ROLLBACK_REQUESTED, COMMITTED, ROLLED_BACK, FAILED)
FINISHED = (COMMITTED, ROLLED_BACK, FAILED)

# Debian upstream-version characters, no epoch (":") and no "/": a version is a folder name.
VERSION = re.compile(r"^[0-9][0-9A-Za-z.+~-]{0,63}$")


def check_version(text: str) -> str:
    if not isinstance(text, str) or not VERSION.match(text) or ".." in text:
        raise ValueError(f"{text!r} is not a release version (digits first, then letters, digits, . + ~ -)")
    return text


@dataclass(frozen=True, slots=True)
class UpdateState:
    phase: str
    from_version: str
    to_version: str
    since_ms: int  # when the update was staged (wall clock)
    probation_s: float
    max_boots: int  # starts of the new release allowed before it must have passed probation
    boots: int = 0  # starts of the new release so far (counted by the guard, before it runs)
    reason: str | None = None  # why it was rolled back
    reported: bool = False  # the outcome event is in the outbox of whichever release runs
    origin: str = "local"  # "local" (lintel update) or the key id of the remote command
    command_id: str | None = None  # the remote command that asked for it, for the fleet's report

    @property
    def running_version(self) -> str:
        """The release the service should be running in this phase."""
        return self.to_version if self.phase in (PROBATION, COMMITTED) else self.from_version

    def to_json(self) -> bytes:
        return json.dumps({"schema": SCHEMA, **asdict(self)}, indent=1, sort_keys=True).encode()

    def but(self, **changes: object) -> UpdateState:
        return replace(self, **changes)  # type: ignore[arg-type]


def state_path(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


def read_state(state_dir: Path) -> UpdateState | None:
    """The update in progress or last finished; None if there is none or the file is unreadable."""
    try:
        body = json.loads(state_path(state_dir).read_bytes()[:65536])
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or body.pop("schema", None) != SCHEMA:
        return None
    try:
        state = UpdateState(**body)
        check_version(state.from_version)
        check_version(state.to_version)
    except (TypeError, ValueError):
        return None
    if state.phase not in PHASES:
        return None
    return state


def write_state(state_dir: Path, state: UpdateState) -> None:
    # 0644: the guard (root) and the service user both read it; the service user owns the folder
    write_file(state_path(state_dir), state.to_json(), 0o644)
