"""What the outbox writer reports (status.json, `lintel status`, the upstream `stats`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClassCounts:
    telemetry: int
    state: int
    event: int
    alarm: int


@dataclass(frozen=True, slots=True)
class OutboxReport:
    last_seq: int  # the last native seq handed out (what receivers see in payloads)
    rows: ClassCounts
    bytes: ClassCounts
    pending_records: int
    accepted_records: int
    commits: int
    last_commit_ms: int | None
    dropped: dict[str, int]  # "<class>.<reason>": records, counted once each
    at_disk_floor: bool
    disk_full: bool
    held_in_memory: int  # alarms/events kept in memory while the disk is full
    degraded: str | None  # why the outbox is not fully working (None: it is)
    corrupt_rows: int  # rows whose checksum failed: never published
    last_error: str | None
    # native messages deleted unsent (evicted, expired, corrupt): every hole a receiver sees in the
    # native seq is counted here, and nothing else is (default: a status.json from before it)
    native_seqs_dropped: int = 0
