"""What the uplink reports (status.json, `lintel status`, the upstream `stats`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UplinkReport:
    state: str  # disabled, connecting, connected, backoff, stopped, …
    broker: str | None = None
    last_error: str | None = None
    connected_since_ms: int | None = None
    connects: int = 0
    attempts: int = 0
    sent: int = 0
    acked: int = 0
    rejected: int = 0
    inflight: int = 0
    backlog_until_seq: int | None = None
    commands_received: int = 0
    oversize_dropped: int = 0  # connections dropped for a packet over max_packet_kb
