"""The Sparkplug B link: a second MQTT connection (client id `<id>-spb`) beside the native uplink.

Sparkplug's NDEATH must be the last will of the connection that published the NBIRTH, and the
native connection's will is the native `status`: MQTT allows one will per connection, so Sparkplug
has its own, to the same broker with the same settings. One thread named `uplink-spb` owns it; each
connection takes the next bdSeq (persisted before it goes into the will) and runs one `SpbSession`.
It reads only the outbox's `spBv1.0/` rows and acknowledges them to the same writer; the native
session never sees them. Reconnects follow the native uplink's `ReconnectPolicy`.
"""

from __future__ import annotations

import dataclasses
import logging

from gateway.core import Clock
from gateway.delivery.link_thread import LinkThread, RecentlyAcked
from gateway.delivery.report import SparkplugLinkReport
from gateway.delivery.settings import UplinkSettings
from gateway.delivery.sparkplug_session import SpbSession
from gateway.storage.outbox.writer import OutboxWriter
from gateway.upstream.bridges.sparkplug import SparkplugBridge, node_death

log = logging.getLogger("lintel.uplink.sparkplug")


class SparkplugLink(LinkThread):
    thread_name = "uplink-spb"
    log = log

    def __init__(
        self,
        settings: UplinkSettings,
        writer: OutboxWriter,
        clock: Clock,
        bridge: SparkplugBridge,
        primary_host_id: str | None,
        *,
        qos: int = 0,
        state_skew_s: float = 300.0,
    ) -> None:
        super().__init__(dataclasses.replace(settings, client_id=f"{settings.client_id}-spb"), clock)
        self.writer = writer
        self.bridge = bridge
        self.topics = bridge.topics
        self.model = bridge.model
        self.primary_host_id = primary_host_id
        self.qos = qos  # of births, DDATA, NDATA and DDEATH (the will NDEATH is QoS 1, the spec)
        # a primary host STATE stamped later than now + this is ignored (forged): the newest
        # accepted one is in the model (kept across restarts)
        self.state_skew_ms = round(state_skew_s * 1000)
        self.births = self.rebirths = 0
        self.superseded = self.historical = self.host_offline = self.commands_received = 0
        self.rejected: dict[str, int] = {}  # bad inbound or stored input, per kind (logged once each)
        self.recently_acked: RecentlyAcked = RecentlyAcked()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the link, then keep the metrics' last values for the births after the restart."""
        super().stop(timeout)
        self.model.save_now()

    def bad_input(self, kind: str, what: str) -> None:
        n = self.rejected.get(kind, 0)
        self.rejected[kind] = n + 1
        if n == 0:
            log.warning("sparkplug: %s (counted, logged once)", what)

    def report(self) -> SparkplugLinkReport:
        return SparkplugLinkReport(
            state=self.state,
            client_id=self.settings.client_id,
            bd_seq=self.model.bd_seq,
            connects=self.connects,
            births=self.births,
            rebirths=self.rebirths,
            sent=self.sent,
            acked=self.acked,
            historical=self.historical,
            superseded=self.superseded,
            host_offline=self.host_offline,
            commands_received=self.commands_received,
            rejected=dict(self.rejected),
            values_refused=self.bridge.bad_input,
        )

    def set_state(self, state: str, error: str | None = None) -> None:
        if state != self.state or error != self.last_error:
            if error and state != "connected" and error != self.last_error:
                log.warning("sparkplug link %s: %s", state, error)
            elif state != self.state:
                log.info("sparkplug link %s", state)
        self.state, self.last_error = state, error

    # -- thread -----------------------------------------------------------------------------
    def _session(self) -> None:
        self.set_state("connecting", self.last_error)
        bd_seq = self.model.next_bd_seq()
        client = self._new_client()  # a clean session, as the spec requires
        will = node_death(bd_seq, self.clock.time_ms())
        client.will_set(self.topics.node_topic("NDEATH"), will, qos=1, retain=False)
        session = SpbSession(self, client, bd_seq)
        if self._connect(client):
            session.run()
        else:
            self.model.unused_bd_seq(bd_seq)  # no CONNECT went out: bdSeq counts connections made
