"""What the uplink reports (status.json, `lintel status`, the upstream `stats`)."""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True, slots=True)
class SparkplugLinkReport:
    """The Sparkplug B link's own connection (docs/bridges.md), beside the native uplink's."""

    state: str  # stopped, connecting, waiting for primary host, online, backoff
    client_id: str
    bd_seq: int  # of the current (or last) connection: its NDEATH carries the same
    connects: int = 0
    births: int = 0  # NBIRTH sets sent (each followed by the DBIRTHs)
    rebirths: int = 0  # of them asked by a host (NCMD Node Control/Rebirth)
    sent: int = 0
    acked: int = 0
    historical: int = 0  # held rows sent later with is_historical
    superseded: int = 0
    host_offline: int = 0  # times the primary host's STATE said offline (data held meanwhile)
    commands_received: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # bad inbound or stored input, by kind
    values_refused: int = 0  # readings Sparkplug could not carry (a point that changed type)
