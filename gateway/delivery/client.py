"""MQTT uplink over paho-mqtt 2 (MQTT 5 or 3.1.1, optional TLS / mutual TLS, password file).

One thread named `uplink` owns the paho client, a read-only outbox connection and the in-flight
window; it drives paho's external loop with select(), woken through a socketpair when the writer
commits. A message counts as delivered only on its PUBACK; acknowledged (class, seq, size) triples go
to the writer in batches, which deletes them. A connection that misses a PUBACK for `ack_timeout_s`
is dropped and everything unacknowledged is sent again on the next one.
Reconnects follow `ReconnectPolicy` (reconnect.py): full jitter under a low ceiling, so a returning
broker is reached within `reconnect_max_s`, and a reset only after a connection held
`stable_after_s`. Refused credentials or certificates are logged once per change, then retried with
the same backoff: a misconfigured gateway never spins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from gateway.core import Clock
from gateway.delivery.link_thread import LinkThread, RecentlyAcked
from gateway.delivery.report import UplinkReport
from gateway.delivery.session import Session
from gateway.delivery.settings import UplinkSettings
from gateway.storage.outbox.writer import OutboxWriter
from gateway.upstream.encode import Encoder

log = logging.getLogger("lintel.uplink")


class Uplink(LinkThread):
    thread_name = "uplink"
    log = log

    def __init__(
        self,
        settings: UplinkSettings,
        writer: OutboxWriter,
        encoder: Encoder,
        clock: Clock,
        birth_body: Callable[[], Mapping[str, Any]],
    ) -> None:
        super().__init__(settings, clock)
        self.writer = writer
        self.encoder = encoder
        self.birth_body = birth_body
        # Status (read by other threads; plain attribute writes are atomic enough for display).
        self.connected_since_ms: int | None = None
        self.attempts = 0
        self.rejected = 0
        self.inflight_count = 0
        self.backlog_until_seq = 0
        # Commands from the command topic go here (called in the uplink thread; must not block).
        self.on_command: Callable[[bytes], None] | None = None
        # The retained deployment topic (payload, retained flag): same thread rules as on_command.
        self.on_deployment: Callable[[bytes, bool], None] | None = None
        self.commands_received = 0
        self.recently_acked: RecentlyAcked = RecentlyAcked()  # (class, seq)

    def report(self) -> UplinkReport:
        return UplinkReport(
            self.state,
            f"{'mqtts' if self.settings.tls else 'mqtt'}://{self.settings.host}:{self.settings.port}",
            self.last_error,
            self.connected_since_ms,
            self.connects,
            self.attempts,
            self.sent,
            self.acked,
            self.rejected,
            self.inflight_count,
            self.backlog_until_seq,
            self.commands_received,
            self.oversize_dropped,
        )

    def set_state(self, state: str, error: str | None = None) -> None:
        """Record a state; log only real changes (not every retry of the same failure)."""
        retrying = {"connecting", "backoff"}
        quiet = state in retrying and self.state in retrying and error == self.last_error
        changed = (state != self.state or error != self.last_error) and not quiet
        self.state, self.last_error = state, error
        if changed:
            if error and state != "connected":
                log.warning("uplink %s: %s", state, error)
            else:
                log.info("uplink %s", state)

    # -- thread -----------------------------------------------------------------------------------
    def _after_session(self) -> None:
        self.connected_since_ms = None
        self.inflight_count = 0
        if not self.stopping.is_set():
            self.set_state("backoff", self.last_error)

    def _session(self) -> None:
        self.attempts += 1
        self.set_state("connecting", self.last_error)
        client = self._new_client()
        status_offline = self.encoder.status(self.writer.last_seq, self.clock.time_ms(), "offline")
        client.will_set(self.encoder.topics.status, status_offline, qos=1, retain=True)
        session = Session(self, client)
        if self._connect(client):
            session.run()
