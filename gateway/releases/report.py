"""What births and `stats` say about releases: the running version, the one before it, and the
update in progress or last finished (for the fleet's rollout waves: canary share, halt on rollbacks)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.releases.state import UpdateState


@dataclass(frozen=True, slots=True)
class UpdateReport:
    phase: str  # probation, rollback_requested, committed, rolled_back
    from_version: str
    to_version: str
    since_ms: int
    boots: int
    reason: str | None
    command_id: str | None


@dataclass(frozen=True, slots=True)
class ReleaseReport:
    version: str  # the running release
    previous_version: str | None  # the release that ran before it (the other side of the last update)
    update: UpdateReport | None  # null when this gateway was never updated in place

    @classmethod
    def of(cls, version: str, state: UpdateState | None) -> ReleaseReport:
        if state is None:
            return cls(version, None, None)
        if version == state.to_version:
            previous: str | None = state.from_version
        elif version == state.from_version:
            previous = state.to_version
        else:
            previous = None
        update = UpdateReport(
            state.phase,
            state.from_version,
            state.to_version,
            state.since_ms,
            state.boots,
            state.reason,
            state.command_id,
        )
        return cls(version, previous, update)
