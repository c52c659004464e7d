"""One MQTT connection of the Sparkplug link: births, the outbox's Sparkplug rows, NCMD and STATE.

Order on a connection (docs/bridges.md, Sparkplug B):
1. CONNECT with the will NDEATH(bdSeq); subscribe NCMD (and the primary host's STATE, if one is
   configured: nothing more is published until its retained STATE says online).
2. NBIRTH (seq 0: bdSeq, `Node Control/Rebirth` = false), then a DBIRTH for every device with a
   metric, current values from the bridge's model. The outbox's last row at that moment is the
   session's *boundary*.
3. The outbox's `spBv1.0/` rows in row order, at the link's QoS (0 as the spec requires: deleted
   once written to the socket; 1: deleted on PUBACK), each given the next `seq` (0-255) as it is
   published (sparkplug_rows.py: rows up to the boundary go out as history or not at all). Devices
   dead at step 2 (and devices that left the configuration) get their DDEATH once the rows up to
   the boundary are out.
A rebirth request (NCMD `Node Control/Rebirth` = true) repeats step 2 with the same bdSeq, at most
once a second; a STATE `online: false` of the primary host ends the session with NDEATH (the link
reconnects and waits). A STATE stamped in the future (beyond the link's skew) is ignored and
counted, and one older than the newest accepted (remembered across sessions) is ignored: a forged
retained STATE can neither end the session nor make the host's real STATE look older. Whether the
host was last online is kept across restarts: a node that meets only a forgery is born at once.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from google.protobuf.message import DecodeError

from gateway.core import Klass
from gateway.delivery.link_thread import LOOP_TURN_S
from gateway.delivery.mqtt_session import LinkHost, MqttSession
from gateway.delivery.queues import RowCursor
from gateway.delivery.sparkplug_inbound import BadInput, host_state, rebirth_requested
from gateway.delivery.sparkplug_rows import outgoing, sparkplug_rows
from gateway.upstream.bridges import sparkplug_pb as pb
from gateway.upstream.bridges.sparkplug import SpbTopics, device_birth, node_birth, node_death
from gateway.upstream.bridges.sparkplug_model import NodeModel

REBIRTH_MIN_S = 1.0

log = logging.getLogger("lintel.uplink.sparkplug")


class SparkplugHost(LinkHost, Protocol):
    """What a Sparkplug session uses of its link (sparkplug_link.SparkplugLink): the `LinkHost` part
    plus the topics, the node model, the primary host, the QoS, and the Sparkplug counters."""

    topics: SpbTopics
    model: NodeModel
    primary_host_id: str | None
    qos: int
    state_skew_ms: int
    births: int
    rebirths: int
    superseded: int
    historical: int
    host_offline: int
    commands_received: int

    def bad_input(self, kind: str, what: str) -> None: ...


class SpbSession(MqttSession):
    """One Sparkplug connection (see the module); the connection machinery is `MqttSession`'s."""

    link: SparkplugHost
    ack_flush_s = 0.0  # rows are handed to the writer at every turn

    def __init__(self, link: SparkplugHost, client: mqtt.Client, bd_seq: int) -> None:
        super().__init__(link, client)
        self.bd_seq = bd_seq
        self.born = False
        self.seq = 0
        self.boundary = 0
        self.dead: list[str] = []
        self.rows: RowCursor | None = None
        self.end_requested = False
        self.rebirth_due = False
        self.last_birth = -REBIRTH_MIN_S

    # -- connection ----------------------------------------------------------------------------
    def _connected(self, client: mqtt.Client) -> None:
        link = self.link
        assert self.reader is not None
        self.rows = sparkplug_rows(self.reader)
        client.subscribe(link.topics.node_topic("NCMD"), qos=1)
        client.subscribe(link.topics.device_topic("DCMD", "+"), qos=1)  # counted: not supported
        if link.primary_host_id:
            client.subscribe(link.topics.state(link.primary_host_id), qos=1)
            link.set_state("waiting for primary host")
        else:
            self._birth()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        link = self.link
        if message.topic == link.topics.node_topic("NCMD"):
            self._command(bytes(message.payload))
        elif message.topic.startswith(link.topics.device_topic("DCMD", "")):
            link.commands_received += 1
            link.bad_input("DCMD", "DCMD received: device commands are not supported over Sparkplug")
        elif link.primary_host_id and message.topic == link.topics.state(link.primary_host_id):
            self._state(bytes(message.payload))

    # -- inbound -------------------------------------------------------------------------------
    def _command(self, payload: bytes) -> None:
        self.link.commands_received += 1
        try:
            rebirth = rebirth_requested(payload)
        except BadInput as exc:
            self.link.bad_input("NCMD", str(exc))
            return
        if not rebirth:
            self.link.bad_input("NCMD", "NCMD without Node Control/Rebirth = true (ignored)")
            return
        if self.born:
            # at most one rebirth per REBIRTH_MIN_S: a flood of requests costs one set of births
            self.rebirth_due = True

    def _state(self, payload: bytes) -> None:
        try:
            online, ts = host_state(payload)
        except BadInput as exc:
            self.link.bad_input("STATE", str(exc))
            return
        link = self.link
        ahead = ts - link.clock.time_ms()
        if ahead > link.state_skew_ms:
            link.bad_input("STATE", f"STATE stamped {ahead / 1000:.0f} s in the future (ignored: forged?)")
            if link.model.host_state[1] and not self.born:
                self._birth()  # the last believable STATE said online; a forged one changes nothing
            return
        if ts < link.model.host_state[0]:
            return  # older than one accepted (the spec): a late copy, or an offline older than its session
        link.model.host_said(ts, online)
        if online and not self.born:
            log.info("sparkplug: primary host %s online", self.link.primary_host_id)
            self._birth()
        elif not online and self.born:
            log.warning("sparkplug: primary host %s offline: ending the session", self.link.primary_host_id)
            self.link.host_offline += 1
            self.end_requested = True  # not from inside paho's read: the run loop ends it

    # -- outbound ----------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    def _birth(self) -> None:
        """NBIRTH and every device's DBIRTH; the outbox's last seq now is the new boundary."""
        link = self.link
        now = link.clock.time_ms()
        self.seq = 0
        nbirth = node_birth(self.bd_seq, now, link.model.node_snapshot())
        self.client.publish(link.topics.node_topic("NBIRTH"), nbirth, qos=0)
        self.boundary = link.writer.last_row  # before the snapshot: every row up to it is in there
        self.dead = []
        for device, alive, slots in link.model.snapshot():
            if slots:  # a device that left the configuration has none: not born, only its DDEATH
                payload = pb.with_seq(device_birth(slots, now), self._next_seq())
                self.client.publish(link.topics.device_topic("DBIRTH", device), payload, qos=0)
            if not alive:
                self.dead.append(device)
        self.born = True
        self.last_birth = link.clock.monotonic()
        link.births += 1
        link.set_state("online")

    def _deaths(self) -> None:
        now = self.link.clock.time_ms()
        for device in self.dead:
            payload = pb.encode(now, [], seq=self._next_seq())
            self.client.publish(self.link.topics.device_topic("DDEATH", device), payload, qos=0)
        self.dead = []

    def _fill_window(self) -> None:
        if not self.born or self.ended:
            return
        link = self.link
        retired = link.model.retired()
        while len(self.inflight) < link.settings.inflight_max:
            msg = self.rows.next() if self.rows is not None else None
            if self.dead and (msg is None or msg.seq > self.boundary):
                self._deaths()
            if msg is None:
                break
            if (Klass.TELEMETRY, msg.seq) in link.recently_acked:
                continue  # acknowledged on an earlier connection, its deletion not committed yet
            held = msg.seq <= self.boundary
            try:
                out = outgoing(msg, held, (self.seq + 1) % 256, retired)
            except DecodeError:  # crc-checked rows of our own: only a bug gets here
                link.bad_input("row", f"outbox row {msg.seq} is not a Sparkplug payload (dropped)")
                out = None
            if out is None:  # superseded by this session's births (or unusable): done with it
                self._done(Klass.TELEMETRY, msg.seq, msg.size)
                link.superseded += 1
                continue
            topic, payload = out
            self._next_seq()
            link.historical += held
            if not self._publish_row(Klass.TELEMETRY, msg.seq, msg.size, topic, payload, qos=link.qos):
                return

    def _end_with_death(self) -> None:
        """The spec's intentional end: NDEATH, then DISCONNECT (so the broker drops the will)."""
        death = node_death(self.bd_seq, self.link.clock.time_ms())
        info = self.client.publish(self.link.topics.node_topic("NDEATH"), death, qos=1)
        self._await(info, self.link.clock.monotonic() + 1.0)
        self._flush_acks(force=True)
        self.ended = True

    # -- the loop's hooks ------------------------------------------------------------------------
    def _before_turn(self) -> bool:
        if self.end_requested:
            self._end_with_death()
            return True
        if self.rebirth_due and self.link.clock.monotonic() - self.last_birth >= REBIRTH_MIN_S:
            self.rebirth_due = False
            self.link.rebirths += 1
            log.info("sparkplug: rebirth requested")
            self._birth()
        return False

    def _timeout(self) -> float:
        if self.rebirth_due:
            return min(LOOP_TURN_S, max(0.01, self.last_birth + REBIRTH_MIN_S - self.link.clock.monotonic()))
        return LOOP_TURN_S

    def _woken(self) -> None:
        if self.rows is not None:
            self.rows.more_committed()

    def _can_drain(self) -> bool:
        return self.born  # never born (waiting for the host): nothing to send, nothing to end

    def _say_goodbye(self) -> None:
        self._end_with_death()
