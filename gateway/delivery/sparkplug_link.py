"""The Sparkplug B link: a second MQTT connection (client id `<id>-spb`) beside the native uplink.

Sparkplug's NDEATH must be the last will of the connection that published the NBIRTH, and the
native connection's will is the native `status`: MQTT allows one will per connection, so Sparkplug
has its own, to the same broker with the same settings. One thread named `uplink-spb` owns it; each
connection takes the next bdSeq (persisted before it goes into the will) and runs one `SpbSession`.
It reads only the outbox's `spBv1.0/` rows and acknowledges them to the same writer; the native
session never sees them. Reconnects follow the native uplink's `ReconnectPolicy`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import select
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.core import Clock
from gateway.delivery.bounded import CappedClient
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
        self.connects = self.sent = self.acked = self.births = self.rebirths = 0
        self.superseded = self.historical = self.host_offline = self.commands_received = 0
        self.rejected: dict[str, int] = {}  # bad inbound or stored input, per kind (logged once each)
        self.recently_acked: RecentlyAcked[int] = RecentlyAcked()  # row seqs

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

    def pump(self, client: mqtt.Client, timeout: float) -> tuple[bool, str | None]:
        """One turn of paho's external loop: (woken by a commit, why the connection is lost)."""
        self.progress_mono = self.clock.monotonic()
        sock = client.socket()
        if sock is None:
            return False, "no socket"
        wlist = [sock] if client.want_write() else []
        try:
            readable, writable, _ = select.select([sock, self.wake_socket], wlist, [], timeout)
        except (OSError, ValueError) as exc:
            return False, f"select failed: {exc}"
        woken = self.wake_socket in readable
        if woken:
            with contextlib.suppress(BlockingIOError):
                while self.wake_socket.recv(4096):
                    pass
        ok = (MQTTErrorCode.MQTT_ERR_SUCCESS,)
        if sock in readable and client.loop_read() not in ok:
            return woken, "read failed"
        writing = sock in writable or client.want_write()
        if writing and client.loop_write() not in (*ok, MQTTErrorCode.MQTT_ERR_AGAIN):
            return woken, "write failed"
        if client.loop_misc() not in ok:
            return woken, "keepalive timed out"
        return woken, None

    # -- thread -----------------------------------------------------------------------------
    def _session(self) -> None:
        s = self.settings
        self.set_state("connecting", self.last_error)
        bd_seq = self.model.next_bd_seq()
        v5 = s.protocol == "5"
        client = CappedClient(
            CallbackAPIVersion.VERSION2,
            max_packet_bytes=s.max_packet_bytes,
            client_id=s.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else True,  # the spec: clean sessions only
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(s.inflight_max + 8)
        client.max_queued_messages_set(0)
        client.connect_timeout = s.connect_timeout_s
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set(ca_certs=s.ca_file, certfile=s.cert_file, keyfile=s.key_file)
        will = node_death(bd_seq, self.clock.time_ms())
        client.will_set(self.topics.node_topic("NDEATH"), will, qos=1, retain=False)
        session = SpbSession(self, client, bd_seq)
        try:
            if v5:  # the broker must not send us more than we accept (as the native uplink)
                props = Properties(PacketTypes.CONNECT)
                props.MaximumPacketSize = s.max_packet_bytes
                client.connect(s.host, s.port, s.keepalive_s, clean_start=True, properties=props)
            else:
                client.connect(s.host, s.port, s.keepalive_s)
        except ssl.SSLError as exc:
            self.model.unused_bd_seq(bd_seq)
            self.set_state("backoff", f"TLS with {s.host}:{s.port} failed: {exc}")
            return
        except (OSError, ValueError) as exc:
            self.model.unused_bd_seq(bd_seq)  # no CONNECT went out: bdSeq counts connections made
            self.set_state("backoff", f"cannot reach {s.host}:{s.port}: {exc}")
            return
        session.run()
