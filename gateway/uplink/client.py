"""MQTT uplink over paho-mqtt 2 (MQTT 5 or 3.1.1, optional TLS / mutual TLS, password file).

One thread named `uplink` owns the paho client, a read-only outbox connection and the in-flight
window; it drives paho's external loop with select(), woken through a socketpair when the writer
commits. A message counts as delivered only on its PUBACK; acknowledged (class, seq, size) triples go
to the writer in batches, which deletes them. A connection that misses a PUBACK for `ack_timeout_s`
is dropped and everything unacknowledged is sent again on the next one.
Reconnects back off exponentially with full jitter; the backoff resets only after a connection
stayed up `stable_after_s`. Refused credentials or certificates are logged once per change, then
retried with the same backoff: a misconfigured gateway never spins.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from gateway.core import Backoff, Clock, Klass
from gateway.encode import Encoder
from gateway.outbox.store import OutboxReader
from gateway.outbox.writer import OutboxWriter
from gateway.uplink.lanes import LaneScheduler

log = logging.getLogger("lintel.uplink")

ACK_BATCH = 256
ACK_FLUSH_S = 0.05


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
    reconnect_max_s: float = 120.0
    stable_after_s: float = 30.0
    connect_timeout_s: float = 10.0

    @classmethod
    def from_config(
        cls, cfg: Any, client_id: str, password: str | None, resolve: Callable[[str], Any]
    ) -> UplinkSettings:
        url = urlsplit(cfg.url)
        return cls(
            host=url.hostname or "",
            port=url.port or (8883 if cfg.tls else 1883),
            tls=cfg.tls,
            protocol=cfg.protocol,
            client_id=cfg.client_id or client_id,
            username=cfg.username,
            password=password,
            ca_file=str(resolve(cfg.ca_file)) if cfg.ca_file else None,
            cert_file=str(resolve(cfg.cert_file)) if cfg.cert_file else None,
            key_file=str(resolve(cfg.key_file)) if cfg.key_file else None,
            keepalive_s=cfg.keepalive_s,
            inflight_max=cfg.inflight_max,
            ack_timeout_s=cfg.ack_timeout_s,
            drain_rate_msg_s=cfg.drain_rate_msg_s,
            reconnect_initial_s=cfg.reconnect_initial_s,
            reconnect_max_s=cfg.reconnect_max_s,
            stable_after_s=cfg.stable_after_s,
        )


class _SessionEnd(Exception):
    pass


class Uplink:
    def __init__(
        self,
        settings: UplinkSettings,
        writer: OutboxWriter,
        encoder: Encoder,
        clock: Clock,
        birth_body: Callable[[], Mapping[str, Any]],
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.encoder = encoder
        self.clock = clock
        self.birth_body = birth_body
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = threading.Event()
        self._stop_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._backoff = Backoff(settings.reconnect_initial_s, settings.reconnect_max_s)
        # Status (read by other threads; plain attribute writes are atomic enough for display).
        self.state = "stopped"
        self.last_error: str | None = None
        self.connected_since_ms: int | None = None
        self.connects = 0
        self.attempts = 0
        self.sent = 0
        self.acked = 0
        self.rejected = 0
        self.inflight_count = 0
        self.backlog_until_seq = 0
        self.progress_mono = time.monotonic()  # last turn of the uplink loop (watchdog)

    # -- control ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    def wake(self, _last_seq: int = 0) -> None:
        """Called by the writer after each commit (any thread)."""
        with contextlib.suppress(BlockingIOError, OSError):  # a wake-up is already pending, or closed
            self._wake_w.send(b"\0")

    def stop(self, timeout: float = 5.0) -> None:
        """Finish in-flight messages (up to `timeout`), publish `offline` status, disconnect."""
        self._stop_deadline = time.monotonic() + timeout
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout + 2)
        self._wake_r.close()
        self._wake_w.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "broker": f"{'mqtts' if self.settings.tls else 'mqtt'}://{self.settings.host}:{self.settings.port}",
            "last_error": self.last_error,
            "connected_since_ms": self.connected_since_ms,
            "connects": self.connects,
            "attempts": self.attempts,
            "sent": self.sent,
            "acked": self.acked,
            "rejected": self.rejected,
            "inflight": self.inflight_count,
            "backlog_until_seq": self.backlog_until_seq,
        }

    def _set_state(self, state: str, error: str | None = None) -> None:
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
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except Exception as exc:  # a bug, or a paho surprise: never let the uplink thread die
                log.exception("uplink session failed")
                self._set_state("backoff", f"internal error: {exc}")
            self.connected_since_ms = None
            self.inflight_count = 0
            if self._stop.is_set():
                break
            self._set_state("backoff", self.last_error)
            deadline = time.monotonic() + self._backoff.next_delay()
            while not self._stop.is_set() and time.monotonic() < deadline:
                self.progress_mono = time.monotonic()  # waiting on purpose is progress
                self._stop.wait(min(1.0, deadline - time.monotonic()))
        self._set_state("stopped")

    def _new_client(self) -> mqtt.Client:
        s = self.settings
        protocol = MQTTProtocolVersion.MQTTv5 if s.protocol == "5" else MQTTProtocolVersion.MQTTv311
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=protocol,
            clean_session=None if protocol == MQTTProtocolVersion.MQTTv5 else True,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(s.inflight_max + 8)  # our window plus birth/status
        client.max_queued_messages_set(0)
        client.connect_timeout = s.connect_timeout_s
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set(ca_certs=s.ca_file, certfile=s.cert_file, keyfile=s.key_file)
        status_offline = self.encoder.status(self.writer.last_seq, self.clock.time_ms(), "offline")
        client.will_set(self.encoder.topics.status, status_offline, qos=1, retain=True)
        return client

    def _session(self) -> None:
        s = self.settings
        self.attempts += 1
        self._set_state("connecting", self.last_error)
        client = self._new_client()
        session = _Session(self, client)
        try:
            if s.protocol == "5":
                client.connect(s.host, s.port, s.keepalive_s, clean_start=True)
            else:
                client.connect(s.host, s.port, s.keepalive_s)
        except ssl.SSLCertVerificationError as exc:
            self._set_state("backoff", f"TLS certificate of {s.host} not trusted: {exc.verify_message}")
            return
        except ssl.SSLError as exc:
            self._set_state("backoff", f"TLS handshake with {s.host}:{s.port} failed: {exc.reason or exc}")
            return
        except (OSError, ValueError) as exc:
            self._set_state("backoff", f"cannot reach {s.host}:{s.port}: {exc}")
            return
        session.run()
        if self.connected_since_ms is not None:
            up_s = (self.clock.time_ms() - self.connected_since_ms) / 1000
            if up_s >= s.stable_after_s:
                self._backoff.reset()


class _Session:
    """One MQTT connection: CONNACK, birth, the publish window, acks, graceful end."""

    def __init__(self, uplink: Uplink, client: mqtt.Client) -> None:
        self.up = uplink
        self.client = client
        self.inflight: dict[int, tuple[Klass, int, int, float]] = {}
        self.control_mids: set[int] = set()
        self.acks: list[tuple[Klass, int, int]] = []
        self.acks_since = 0.0
        self.ready = False
        self.ended = False
        self.opened = time.monotonic()
        self.lanes: LaneScheduler | None = None
        self.reader: OutboxReader | None = None
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect

    # paho callbacks (run in this thread, inside loop_read/loop_write)
    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.up._set_state("backoff", f"broker refused the connection: {reason}")
            self.ended = True
            return
        up = self.up
        up.connects += 1
        up.connected_since_ms = up.clock.time_ms()
        up._set_state("connected")
        self.reader = OutboxReader(up.writer.store.path)
        boundary = up.writer.last_seq
        up.backlog_until_seq = boundary
        self.lanes = LaneScheduler(self.reader, boundary, up.settings.drain_rate_msg_s)
        now = up.clock.time_ms()
        body = dict(up.birth_body())
        body["backlog_until_seq"] = boundary
        topics = up.encoder.topics
        birth = up.encoder.birth(boundary, now, body)
        status = up.encoder.status(boundary, now, "online")
        self.control_mids.add(client.publish(topics.birth, birth, qos=1).mid)
        self.control_mids.add(client.publish(topics.status, status, qos=1, retain=True).mid)
        self.ready = True

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
            self.up._set_state("backoff", f"broker refused a publish: {reason}")
            self.ended = True
            return
        klass, seq, size, _ = entry
        if not self.acks:
            self.acks_since = time.monotonic()
        self.acks.append((klass, seq, size))
        self.up.acked += 1

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not self.ended:
            self.up._set_state("backoff", f"connection lost: {reason}")
        self.ended = True

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> None:
        up = self.up
        try:
            while not self.ended:
                if up._stop.is_set():
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
        t = 1.0
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
        self.up.progress_mono = time.monotonic()  # the loop turns: a hung connect or select would not
        sock = self.client.socket()
        if sock is None:
            self.ended = True
            return
        wlist = [sock] if self.client.want_write() else []
        try:
            readable, writable, _ = select.select([sock, self.up._wake_r], wlist, [], timeout)
        except (OSError, ValueError):
            self.ended = True
            return
        if self.up._wake_r in readable:
            try:
                while self.up._wake_r.recv(4096):
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

    def _lost(self, why: str) -> None:
        if not self.ended:
            self.up._set_state("backoff", f"connection lost: {why}")
        self.ended = True

    def _fill_window(self) -> None:
        if not self.ready or self.lanes is None:
            return
        limit = self.up.settings.inflight_max
        while len(self.inflight) < limit:
            msg = self.lanes.next()
            if msg is None:
                break
            info = self.client.publish(msg.topic, msg.payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._lost(f"publish failed: {mqtt.error_string(info.rc)}")
                return
            self.inflight[info.mid] = (msg.klass, msg.seq, msg.size, time.monotonic())
            self.up.sent += 1
        self.up.inflight_count = len(self.inflight)

    def _flush_acks(self, force: bool) -> None:
        if self.acks and (
            force or len(self.acks) >= ACK_BATCH or time.monotonic() - self.acks_since >= ACK_FLUSH_S
        ):
            self.up.writer.ack(self.acks)
            self.acks = []

    def _check_ack_timeout(self) -> None:
        if not self.ready and time.monotonic() - self.opened > self.up.settings.connect_timeout_s:
            self._lost(f"no CONNACK within {self.up.settings.connect_timeout_s:g} s")
            return
        if not self.inflight:
            return
        oldest = next(iter(self.inflight.values()))[3]
        if time.monotonic() - oldest > self.up.settings.ack_timeout_s:
            self._lost(f"no PUBACK within {self.up.settings.ack_timeout_s:g} s")

    def _finish(self) -> None:
        """Graceful end: send what is committed and wait for its acks until the stop deadline,
        then say offline. What is left stays in the outbox for the next start."""
        up = self.up
        if self.ready and self.lanes is not None:
            self.lanes.new_data()  # the writer's final commit may not have woken us yet
            while not self.ended and time.monotonic() < up._stop_deadline:
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
        end = min(up._stop_deadline, time.monotonic() + 1.0)
        while info.mid in self.control_mids and not self.ended and time.monotonic() < end:
            self._io(0.05)
        self.ended = True
