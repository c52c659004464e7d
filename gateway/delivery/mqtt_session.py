"""One MQTT connection of a link, the part both links share: the select() turn, the publish window
and its PUBACKs, the acknowledgements handed to the writer, the timeouts and the graceful end.

A session runs entirely in its link's thread, inside paho's external loop. A protocol (the native
uplink in session.py, Sparkplug B in sparkplug_session.py) subclasses `MqttSession` and fills in
what differs: what happens on CONNACK (`_connected`), on an inbound message (`_on_message`), which
stored row goes out next and how (`_fill_window`), what a commit's wake-up means (`_woken`), and the
last word before a graceful disconnect (`_say_goodbye`). Everything else is here, once.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import Any, NamedTuple, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from gateway.core import Clock, Klass
from gateway.delivery.link_thread import LOOP_TURN_S, RecentlyAcked
from gateway.delivery.reconnect import ReconnectPolicy
from gateway.delivery.settings import UplinkSettings
from gateway.storage.outbox.store import OutboxReader
from gateway.storage.outbox.writer import OutboxWriter

ACK_BATCH = 256  # acknowledged rows handed to the writer at once
ACK_FLUSH_S = 0.05  # ... or after this long


class LinkHost(Protocol):
    """What a session uses of the link that opened it: settings, the writer, the stop signals and
    the counters it keeps up to date (the link's side of one connection, never the whole link)."""

    settings: UplinkSettings
    writer: OutboxWriter
    clock: Clock
    reconnect: ReconnectPolicy
    stopping: threading.Event
    stop_deadline: float
    wake_socket: socket.socket
    progress_mono: float
    connects: int
    sent: int
    acked: int
    oversize_dropped: int

    @property
    def recently_acked(self) -> RecentlyAcked: ...

    def set_state(self, state: str, error: str | None = None) -> None: ...


class InFlight(NamedTuple):
    klass: Klass
    seq: int
    size: int
    sent_at: float  # monotonic


class MqttSession:
    """One connection: CONNACK, the publish window, acks, timeouts, graceful end (see the module)."""

    ack_flush_s = ACK_FLUSH_S  # how long acknowledged rows may wait for the writer

    def __init__(self, link: LinkHost, client: mqtt.Client) -> None:
        self.link = link
        self.client = client
        self.inflight: dict[int, InFlight] = {}  # mid -> row, oldest first
        self.control_mids: set[int] = set()  # our own QoS 1 messages (birth, status): not rows
        self.acks: list[tuple[Klass, int, int]] = []
        self.acks_since = 0.0
        self.ready = False
        self.ended = False
        self.opened = link.clock.monotonic()
        self.reader: OutboxReader | None = None
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message

    # -- what a protocol fills in ---------------------------------------------------------------
    def _connected(self, client: mqtt.Client) -> None:
        """CONNACK accepted, `reader` open: subscribe, publish births (before any row)."""

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        """An inbound message (hostile until checked)."""

    def _fill_window(self) -> None:
        """Publish stored rows (`_publish_row`) while the window has room."""

    def _woken(self) -> None:
        """The writer committed: the row cursors may have more."""

    def _before_turn(self) -> bool:
        """Work at the top of each turn; True ends the session (it has said its goodbye)."""
        return False

    def _timeout(self) -> float:
        """How long the next select() may wait."""
        return min(LOOP_TURN_S, self.ack_flush_s) if self.acks else LOOP_TURN_S

    def _can_drain(self) -> bool:
        """Whether the graceful end may still send rows."""
        return self.ready

    def _say_goodbye(self) -> None:
        """After the graceful drain, the connection still up: the protocol's last message."""

    def _refused(self) -> None:
        """The broker refused one of our rows (MQTT 5 reason code)."""

    # -- paho callbacks (in this thread, inside loop_read/loop_write) ----------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.link.set_state("backoff", f"broker refused the connection: {reason}")
            self.ended = True
            return
        self.link.connects += 1
        self.link.reconnect.connected()
        self.link.set_state("connected")
        self.reader = OutboxReader(self.link.writer.store.path)
        self._connected(client)
        self.ready = True

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        self.control_mids.discard(mid)
        entry = self.inflight.pop(mid, None)
        if entry is None:
            return
        if reason is not None and getattr(reason, "is_failure", False):
            # keep the row: it goes again on the next connection
            self._refused()
            self.link.set_state("backoff", f"broker refused a publish: {reason}")
            self.ended = True
            return
        self._done(entry.klass, entry.seq, entry.size)
        self.link.acked += 1
        self.link.recently_acked.add((entry.klass, entry.seq))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._lost(str(reason))

    def _lost(self, why: str) -> None:
        if not self.ended:
            too_large = getattr(self.client, "too_large", None)  # CappedClient refused a packet
            if too_large is not None:
                self.link.oversize_dropped += 1
                why = f"{too_large.strerror}: dropped unread (mqtt.max_packet_kb)"
            self.link.set_state("backoff", f"connection lost: {why}")
        self.ended = True

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.ended:
                if self.link.stopping.is_set():
                    self._finish()
                    return
                if self._before_turn():
                    return
                self._fill_window()
                self._flush_acks(force=False)
                self._check_timeouts()
                self._io(self._timeout())
        finally:
            self._flush_acks(force=True)
            with contextlib.suppress(Exception):  # already gone
                self.client.disconnect()
            self.client.loop_misc()
            if self.reader is not None:
                self.reader.close()

    def _io(self, timeout: float) -> None:
        """One turn of paho's external loop, woken early by a commit."""
        self.link.progress_mono = self.link.clock.monotonic()  # a hung connect or select would not
        sock = self.client.socket()
        if sock is None:
            self._lost("no socket")
            return
        wake = self.link.wake_socket
        wlist = [sock] if self.client.want_write() else []
        try:
            readable, writable, _ = select.select([sock, wake], wlist, [], timeout)
        except (OSError, ValueError) as exc:
            self._lost(f"select failed: {exc}")
            return
        if wake in readable:
            with contextlib.suppress(BlockingIOError):
                while wake.recv(4096):
                    pass
            self._woken()
        ok = MQTTErrorCode.MQTT_ERR_SUCCESS
        if sock in readable and self.client.loop_read() != ok:
            self._lost("read failed")
            return
        writing = sock in writable or self.client.want_write()
        if writing and self.client.loop_write() not in (ok, MQTTErrorCode.MQTT_ERR_AGAIN):
            self._lost("write failed")
            return
        if self.client.loop_misc() != ok:
            self._lost("keepalive timed out")

    def _publish_row(
        self,
        klass: Klass,
        seq: int,
        size: int,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        qos: int = 1,
    ) -> bool:
        """Publish one stored row; False (the session ended) if paho would not take it. A QoS 1 row
        is done on its PUBACK; a QoS 0 row once paho has written it to the socket."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lost(f"publish failed: {mqtt.error_string(info.rc)}")
            return False
        self.inflight[info.mid] = InFlight(klass, seq, size, self.link.clock.monotonic())
        self.link.sent += 1
        if info.is_published():  # QoS 0 written at once: paho's on_publish came before the entry
            self._on_publish(self.client, None, info.mid, None, None)
        return True

    def _done(self, klass: Klass, seq: int, size: int) -> None:
        """A row is finished with (acknowledged, or superseded): the writer deletes it soon."""
        if not self.acks:
            self.acks_since = self.link.clock.monotonic()
        self.acks.append((klass, seq, size))

    def _flush_acks(self, force: bool) -> None:
        if self.acks and (
            force
            or len(self.acks) >= ACK_BATCH
            or self.link.clock.monotonic() - self.acks_since >= self.ack_flush_s
        ):
            self.link.writer.ack(self.acks)
            self.acks = []
        # Every ack handed over before the writer's undeleted ones is deleted: forget those. At
        # every turn, not only at a hand-over: the writer goes on deleting after the last one (on a
        # busy machine it lagged by thousands, all kept until the next publish's acks).
        if len(self.link.recently_acked) > len(self.acks):
            self.link.recently_acked.keep_newest(self.link.writer.undeleted_acks() + len(self.acks))

    def _check_timeouts(self) -> None:
        s = self.link.settings
        now = self.link.clock.monotonic()
        if not self.ready and now - self.opened > s.connect_timeout_s:
            self._lost(f"no CONNACK within {s.connect_timeout_s:g} s")
        elif self.inflight and now - next(iter(self.inflight.values())).sent_at > s.ack_timeout_s:
            self._lost(f"no PUBACK within {s.ack_timeout_s:g} s")

    def _await(self, info: mqtt.MQTTMessageInfo, end: float) -> None:
        """Turn the loop until `info` is acknowledged, the connection ends or monotonic `end`."""
        while not info.is_published() and not self.ended and self.link.clock.monotonic() < end:
            self._io(0.05)

    def _finish(self) -> None:
        """Graceful end: what is committed goes out and is acknowledged until the stop deadline,
        then the protocol's goodbye. What is left stays in the outbox for the next start."""
        self._woken()  # the writer's final commit may not have woken us yet
        while self._can_drain() and not self.ended and self.link.clock.monotonic() < self.link.stop_deadline:
            self._fill_window()
            if not self.inflight:
                break
            self._flush_acks(force=False)
            self._io(0.05)
        self._flush_acks(force=True)
        if self._can_drain() and not self.ended:
            self._say_goodbye()
        self.ended = True
