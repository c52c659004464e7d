"""One MQTT connection of the native uplink: birth and status at CONNACK, the outbox's native rows
by class (queues.py), commands in, the retained `offline` status at a graceful end. The connection
machinery (select turn, window, acks, timeouts) is `MqttSession`'s."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from gateway.delivery.mqtt_session import LinkHost, MqttSession
from gateway.delivery.queues import QueueScheduler
from gateway.upstream.encode import Encoder


class UplinkHost(LinkHost, Protocol):
    """What a native session uses of the uplink: the `LinkHost` part plus the encoder, the birth
    body, the command callback and the native counters."""

    encoder: Encoder
    birth_body: Callable[[], Mapping[str, Any]]
    on_command: Callable[[bytes], None] | None
    on_deployment: Callable[[bytes, bool], None] | None
    connected_since_ms: int | None
    rejected: int
    inflight_count: int
    backlog_until_seq: int
    commands_received: int


class Session(MqttSession):
    """One native connection (see the module)."""

    link: UplinkHost

    def __init__(self, uplink: UplinkHost, client: mqtt.Client) -> None:
        super().__init__(uplink, client)
        self.queues: QueueScheduler | None = None
        # Retained bridge topics sent live (or at connect) on this connection: a backlog message
        # for one of them is older, superseded, and acknowledged without being sent.
        self.retained_live: set[str] = set()
        self.superseded = 0

    def _connected(self, client: mqtt.Client) -> None:
        up = self.link
        up.connected_since_ms = up.clock.time_ms()
        assert self.reader is not None
        # The boundary: rows up to it are backlog. The queues split by row seq; receivers are told
        # the native seq of the same commit (bridge rows have none).
        boundary_row, boundary = up.writer.position
        up.backlog_until_seq = boundary
        self.queues = QueueScheduler(self.reader, boundary_row, up.settings.drain_rate_msg_s, up.clock)
        now = up.clock.time_ms()
        body = dict(up.birth_body())
        body["backlog_until_seq"] = boundary
        topics = up.encoder.topics
        birth = up.encoder.birth(boundary, now, body)
        status = up.encoder.status(boundary, now, "online")
        self.control_mids.add(client.publish(topics.birth, birth, qos=1).mid)
        self.control_mids.add(client.publish(topics.status, status, qos=1, retain=True).mid)
        for msg in up.encoder.bridges.on_connect():  # config-derived, like the birth: before data
            self.control_mids.add(client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain).mid)
            if msg.retain:
                self.retained_live.add(msg.topic)
        if up.on_command is not None:
            # A clean session each time: subscribe on every connect. Commands sent while we were
            # away are not queued for us; they would be stale by now anyway.
            client.subscribe(topics.command, qos=1)
        if up.on_deployment is not None:
            # Retained: the broker hands the desired deployment over at every connect.
            client.subscribe(topics.deployment, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        up = self.link
        if up.on_command is not None and message.topic == up.encoder.topics.command:
            up.commands_received += 1
            up.on_command(bytes(message.payload))
        elif up.on_deployment is not None and message.topic == up.encoder.topics.deployment:
            up.commands_received += 1
            up.on_deployment(bytes(message.payload), bool(message.retain))

    def _refused(self) -> None:
        self.link.rejected += 1

    def _woken(self) -> None:
        if self.queues is not None:
            self.queues.new_data()

    def _timeout(self) -> float:
        t = super()._timeout()
        if (
            self.queues is not None
            and self.queues.backlog_left
            and len(self.inflight) < self.link.settings.inflight_max
        ):
            t = min(t, max(0.001, self.queues.bucket.wait_s()))
        return t

    def _fill_window(self) -> None:
        if not self.ready or self.queues is None:
            return
        up = self.link
        bridges = up.encoder.bridges
        while len(self.inflight) < up.settings.inflight_max:
            msg = self.queues.next()
            if msg is None:
                break
            if (msg.klass, msg.seq) in up.recently_acked:
                # the broker acknowledged it on an earlier connection; its deletion is not committed
                # yet (the writer was busy): sending it again would only make a duplicate
                continue
            retain = bool(bridges) and bridges.retained(msg.topic)
            if retain:
                if msg.seq > self.queues.boundary_row:
                    self.retained_live.add(msg.topic)
                elif msg.topic in self.retained_live:
                    # older than one already sent on this connection: done, as if acknowledged
                    self._done(msg.klass, msg.seq, msg.size)
                    self.superseded += 1
                    continue
            if not self._publish_row(msg.klass, msg.seq, msg.size, msg.topic, msg.payload, retain=retain):
                return
        up.inflight_count = len(self.inflight)

    def _can_drain(self) -> bool:
        return self.ready and self.queues is not None

    def _say_goodbye(self) -> None:
        up = self.link
        status = up.encoder.status(up.writer.last_seq, up.clock.time_ms(), "offline")
        info = self.client.publish(up.encoder.topics.status, status, qos=1, retain=True)
        self.control_mids.add(info.mid)
        self._await(info, min(up.stop_deadline, up.clock.monotonic() + 1.0))
