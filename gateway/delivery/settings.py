"""What the uplink is configured with, resolved from `[mqtt]` once (secrets read by the caller)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# The `[mqtt]` keys the uplink takes as they are; from_config resolves the others.
AS_CONFIGURED = (
    "tls",
    "protocol",
    "username",
    "keepalive_s",
    "inflight_max",
    "ack_timeout_s",
    "drain_rate_msg_s",
    "reconnect_initial_s",
    "reconnect_max_s",
    "stable_after_s",
)


@dataclass(frozen=True, slots=True)
class UplinkSettings:
    host: str
    port: int
    tls: bool
    protocol: str = "5"
    client_id: str = "lintel"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    inflight_max: int = 100
    ack_timeout_s: float = 30.0
    drain_rate_msg_s: float = 1000.0
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 5.0
    stable_after_s: float = 30.0
    connect_timeout_s: float = 10.0
    max_packet_bytes: int = 320 * 1024  # largest packet accepted from the broker (commands)

    @classmethod
    def from_config(
        cls, cfg: Any, client_id: str, password: str | None, resolve: Callable[[str], Any]
    ) -> UplinkSettings:
        url = urlsplit(cfg.url)
        return cls(
            host=url.hostname or "",
            port=url.port or (8883 if cfg.tls else 1883),
            client_id=cfg.client_id or client_id,
            password=password,
            ca_file=str(resolve(cfg.ca_file)) if cfg.ca_file else None,
            cert_file=str(resolve(cfg.cert_file)) if cfg.cert_file else None,
            key_file=str(resolve(cfg.key_file)) if cfg.key_file else None,
            max_packet_bytes=int(cfg.max_packet_kb * 1024),
            **{key: getattr(cfg, key) for key in AS_CONFIGURED},
        )
