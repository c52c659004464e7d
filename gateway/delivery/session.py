"""One MQTT connection of the uplink: CONNACK, birth and status, the publish window, PUBACKs, and
the graceful end. Runs entirely in the uplink thread, inside paho's external loop (select())."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from gateway.core import Clock, Klass
from gateway.delivery.link_thread import LOOP_TURN_S, RecentlyAcked
from gateway.delivery.queues import LaneScheduler
from gateway.delivery.reconnect import ReconnectPolicy
from gateway.delivery.settings import UplinkSettings
from gateway.storage.outbox.store import OutboxReader
from gateway.storage.outbox.writer import OutboxWriter
from gateway.upstream.encode import Encoder


class UplinkHost(Protocol):
    """What a session uses of the uplink that opened it: its settings and parts, the counters it
    keeps up to date, and the stop signals (the uplink's side of one connection, never the whole)."""

    settings: UplinkSettings
    writer: OutboxWriter
    encoder: Encoder
    clock: Clock
    reconnect: ReconnectPolicy
    stopping: threading.Event
    stop_deadline: float
    wake_socket: socket.socket
    birth_body: Callable[[], Mapping[str, Any]]
    on_command: Callable[[bytes], None] | None
    on_deployment: Callable[[bytes, bool], None] | None
    connected_since_ms: int | None
    connects: int
    sent: int
    acked: int
    rejected: int
    inflight_count: int
    backlog_until_seq: int
    progress_mono: float
    commands_received: int
    oversize_dropped: int

    @property
    def recently_acked(self) -> RecentlyAcked[tuple[Klass, int]]: ...

    def set_state(self, state: str, error: str | None = None) -> None: ...


ACK_BATCH = 256  # acknowledged messages handed to the writer at once
ACK_FLUSH_S = 0.05  # ... or after this long


class Session:
    """One MQTT connection: CONNACK, birth, the publish window, acks, graceful end."""

    def __init__(self, uplink: UplinkHost, client: mqtt.Client) -> None:
        self.up = uplink
        self.client = client
        self.inflight: dict[int, tuple[Klass, int, int, float]] = {}
        self.control_mids: set[int] = set()
        self.acks: list[tuple[Klass, int, int]] = []
        self.acks_since = 0.0
        self.ready = False
        self.ended = False
        self.opened = self.up.clock.monotonic()
        self.lanes: LaneScheduler | None = None
        self.reader: OutboxReader | None = None
        # Retained bridge topics sent live (or at connect) on this connection: a backlog message
        # for one of them is older, superseded, and acknowledged without being sent.
        self.retained_live: set[str] = set()
        self.superseded = 0
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message

    # paho callbacks (run in this thread, inside loop_read/loop_write)
    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.up.set_state("backoff", f"broker refused the connection: {reason}")
            self.ended = True
            return
        up = self.up
        up.connects += 1
        up.reconnect.connected()
        up.connected_since_ms = up.clock.time_ms()
        up.set_state("connected")
        self.reader = OutboxReader(up.writer.store.path)
        boundary = up.writer.last_seq
        up.backlog_until_seq = boundary
        self.lanes = LaneScheduler(self.reader, boundary, up.settings.drain_rate_msg_s, up.clock)
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
        self.ready = True

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        up = self.up
        if up.on_command is not None and message.topic == up.encoder.topics.command:
            up.commands_received += 1
            up.on_command(bytes(message.payload))
        elif up.on_deployment is not None and message.topic == up.encoder.topics.deployment:
            up.commands_received += 1
            up.on_deployment(bytes(message.payload), bool(message.retain))

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        if mid in self.control_mids:
            self.control_mids.discard(mid)
            return
        entry = self.inflight.pop(mid, None)
        if entry is None:
            return
        if reason is not None and getattr(reason, "is_failure", False):
            # The broker refused this message (MQTT 5 reason code): keep it, reconnect later.
            self.up.rejected += 1
            self.up.set_state("backoff", f"broker refused a publish: {reason}")
            self.ended = True
            return
        klass, seq, size, _ = entry
        if not self.acks:
            self.acks_since = self.up.clock.monotonic()
        self.acks.append((klass, seq, size))
        self.up.acked += 1
        self.up.recently_acked.add((klass, seq))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._lost(str(reason))

    def _lost(self, why: str) -> None:
        if not self.ended:
            too_large = getattr(self.client, "too_large", None)  # CappedClient refused a packet
            if too_large is not None:
                self.up.oversize_dropped += 1
                why = f"{too_large.strerror}: dropped unread (mqtt.max_packet_kb)"
            self.up.set_state("backoff", f"connection lost: {why}")
        self.ended = True

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> None:
        up = self.up
        try:
            while not self.ended:
                if up.stopping.is_set():
                    self._finish()
                    return
                self._fill_window()
                self._flush_acks(force=False)
                self._check_ack_timeout()
                self._io(self._timeout())
        finally:
            self._flush_acks(force=True)
            up.inflight_count = 0
            with contextlib.suppress(Exception):  # already gone
                self.client.disconnect()
            self.client.loop_misc()
            if self.reader is not None:
                self.reader.close()

    def _timeout(self) -> float:
        t = LOOP_TURN_S
        if self.acks:
            t = min(t, ACK_FLUSH_S)
        if (
            self.lanes is not None
            and self.lanes.backlog_left
            and len(self.inflight) < self.up.settings.inflight_max
        ):
            t = min(t, max(0.001, self.lanes.bucket.wait_s()))
        return t

    def _io(self, timeout: float) -> None:
        self.up.progress_mono = (
            self.up.clock.monotonic()
        )  # the loop turns: a hung connect or select would not
        sock = self.client.socket()
        if sock is None:
            self.ended = True
            return
        wlist = [sock] if self.client.want_write() else []
        try:
            readable, writable, _ = select.select([sock, self.up.wake_socket], wlist, [], timeout)
        except (OSError, ValueError):
            self.ended = True
            return
        if self.up.wake_socket in readable:
            try:
                while self.up.wake_socket.recv(4096):
                    pass
            except BlockingIOError:
                pass
            if self.lanes is not None:
                self.lanes.new_data()
        if sock in readable and self.client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lost("read failed")
            return
        if (sock in writable or self.client.want_write()) and self.client.loop_write() not in (
            MQTTErrorCode.MQTT_ERR_SUCCESS,
            MQTTErrorCode.MQTT_ERR_AGAIN,
        ):
            self._lost("write failed")
            return
        if self.client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lost("keepalive timed out")

    def _fill_window(self) -> None:
        if not self.ready or self.lanes is None:
            return
        limit = self.up.settings.inflight_max
        bridges = self.up.encoder.bridges
        while len(self.inflight) < limit:
            msg = self.lanes.next()
            if msg is None:
                break
            if (msg.klass, msg.seq) in self.up.recently_acked:
                # the broker acknowledged it on an earlier connection; its deletion is not committed
                # yet (the writer was busy): sending it again would only make a duplicate
                continue
            retain = bool(bridges) and bridges.retained(msg.topic)
            if retain:
                if msg.seq > self.lanes.boundary_seq:
                    self.retained_live.add(msg.topic)
                elif msg.topic in self.retained_live:
                    self._superseded(msg.klass, msg.seq, msg.size)
                    continue
            info = self.client.publish(msg.topic, msg.payload, qos=1, retain=retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._lost(f"publish failed: {mqtt.error_string(info.rc)}")
                return
            self.inflight[info.mid] = (msg.klass, msg.seq, msg.size, self.up.clock.monotonic())
            self.up.sent += 1
        self.up.inflight_count = len(self.inflight)

    def _superseded(self, klass: Klass, seq: int, size: int) -> None:
        """A retained bridge message older than one already sent: done, as if acknowledged."""
        if not self.acks:
            self.acks_since = self.up.clock.monotonic()
        self.acks.append((klass, seq, size))
        self.superseded += 1

    def _flush_acks(self, force: bool) -> None:
        if self.acks and (
            force or len(self.acks) >= ACK_BATCH or self.up.clock.monotonic() - self.acks_since >= ACK_FLUSH_S
        ):
            self.up.writer.ack(self.acks)
            self.acks = []

    def _check_ack_timeout(self) -> None:
        if not self.ready and self.up.clock.monotonic() - self.opened > self.up.settings.connect_timeout_s:
            self._lost(f"no CONNACK within {self.up.settings.connect_timeout_s:g} s")
            return
        if not self.inflight:
            return
        oldest = next(iter(self.inflight.values()))[3]
        if self.up.clock.monotonic() - oldest > self.up.settings.ack_timeout_s:
            self._lost(f"no PUBACK within {self.up.settings.ack_timeout_s:g} s")

    def _finish(self) -> None:
        """Graceful end: send what is committed and wait for its acks until the stop deadline,
        then say offline. What is left stays in the outbox for the next start."""
        up = self.up
        if self.ready and self.lanes is not None:
            self.lanes.new_data()  # the writer's final commit may not have woken us yet
            while not self.ended and self.up.clock.monotonic() < up.stop_deadline:
                self._fill_window()
                if not self.inflight:
                    break
                self._flush_acks(force=False)
                self._io(0.05)
        self._flush_acks(force=True)
        if self.ended or not self.ready:
            self.ended = True
            return
        status = up.encoder.status(up.writer.last_seq, up.clock.time_ms(), "offline")
        info = self.client.publish(up.encoder.topics.status, status, qos=1, retain=True)
        self.control_mids.add(info.mid)
        end = min(up.stop_deadline, self.up.clock.monotonic() + 1.0)
        while info.mid in self.control_mids and not self.ended and self.up.clock.monotonic() < end:
            self._io(0.05)
        self.ended = True
