"""What every MQTT link of the gateway shares: one worker thread, woken when the writer commits.

The native uplink (client.py) and the Sparkplug B link (sparkplug_link.py) each own one paho client
in one thread and drive paho's external loop with select(); a socketpair wakes that select when the
outbox writer commits, so a new row goes out without polling. Both are stopped with a deadline (the
subclass's session finishes in-flight messages and says its death before it), and both are read by
other threads: `state`, `last_error` and `progress_mono` (the last turn of the loop, for the
watchdog; waiting on purpose counts as a turn) are plain attributes, written by the link's thread.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections import deque

from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.core import Clock, Klass
from gateway.delivery.bounded import CappedClient
from gateway.delivery.reconnect import ReconnectPolicy
from gateway.delivery.settings import UplinkSettings

RECENTLY_ACKED_MAX = 16_384  # acks remembered across a reconnect (~40 s at 400 msg/s)
# The longest a healthy link's loop goes without a turn (its select() timeout, its backoff wait
# step): the watchdog allows this on top of stall_after_s.
LOOP_TURN_S = 1.0


class RecentlyAcked:
    """Rows the broker acknowledged whose deletion may not be committed yet, newest last: such a
    row is not sent again on the next connection. After each hand-over to the writer only the
    newest `writer.undeleted_acks()` are kept (`keep_newest`): acks reach the writer in the order
    they arrived and it deletes them in that order, so every older one is deleted. `limit` is a
    hard cap besides. (Kept whole up to 16,384, it held 3.6 MiB per link once full: most of the RSS
    growth of a soak with the broker flapping; bench/flapping_rss.py.)"""

    def __init__(self, limit: int = RECENTLY_ACKED_MAX) -> None:
        self.limit = limit
        self._keys: set[tuple[Klass, int]] = set()
        self._order: deque[tuple[Klass, int]] = deque()

    def add(self, key: tuple[Klass, int]) -> None:
        if key in self._keys:
            return
        self._keys.add(key)
        self._order.append(key)
        self.keep_newest(self.limit)

    def keep_newest(self, n: int) -> None:
        while len(self._order) > n:
            self._keys.discard(self._order.popleft())

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._order)


class LinkThread:
    """Base of a link: the thread, its wake-up socket, the stop deadline and the reconnect loop.
    A subclass sets `thread_name` and `log`, and implements `_session` (one connection, until it
    is lost or `stopping` is set and the deadline `stop_deadline` has passed) and `set_state`."""

    thread_name = "link"
    log = logging.getLogger("lintel.uplink")

    def __init__(self, settings: UplinkSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.wake_socket, self._wake_w = socket.socketpair()
        self.wake_socket.setblocking(False)
        self._wake_w.setblocking(False)
        self.stopping = threading.Event()
        self.stop_deadline = 0.0
        self._thread: threading.Thread | None = None
        self.reconnect = ReconnectPolicy(
            settings.reconnect_initial_s, settings.reconnect_max_s, settings.stable_after_s, clock
        )
        self.state = "stopped"
        self.last_error: str | None = None
        self.progress_mono = clock.monotonic()
        # Counters kept by the link's sessions (read by other threads for reports).
        self.connects = self.sent = self.acked = 0
        self.oversize_dropped = 0  # connections dropped because the broker sent a packet over the cap

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _session(self) -> None:
        raise NotImplementedError

    def set_state(self, state: str, error: str | None = None) -> None:
        raise NotImplementedError

    def _new_client(self) -> CappedClient:
        """A paho client for one connection, from the settings (clean session, our window, the
        packet cap, credentials, TLS); the caller sets its will."""
        s = self.settings
        v5 = s.protocol == "5"
        client = CappedClient(
            CallbackAPIVersion.VERSION2,
            max_packet_bytes=s.max_packet_bytes,
            client_id=s.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else True,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(s.inflight_max + 8)  # our window plus birth/status
        client.max_queued_messages_set(0)
        client.connect_timeout = s.connect_timeout_s
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set(ca_certs=s.ca_file, certfile=s.cert_file, keyfile=s.key_file)
        return client

    def _connect(self, client: CappedClient) -> bool:
        """Send CONNECT; False (state `backoff`, the reason said once) when the broker cannot be
        reached. The CONNACK arrives later, in the session's loop."""
        s = self.settings
        try:
            if s.protocol == "5":
                # The broker must not send us more than we accept (MQTT 5 Maximum Packet Size).
                props = Properties(PacketTypes.CONNECT)
                props.MaximumPacketSize = s.max_packet_bytes
                client.connect(s.host, s.port, s.keepalive_s, clean_start=True, properties=props)
            else:
                client.connect(s.host, s.port, s.keepalive_s)
        except ssl.SSLCertVerificationError as exc:
            self.set_state("backoff", f"TLS certificate of {s.host} not trusted: {exc.verify_message}")
        except ssl.SSLError as exc:
            self.set_state("backoff", f"TLS handshake with {s.host}:{s.port} failed: {exc.reason or exc}")
        except (OSError, ValueError) as exc:
            self.set_state("backoff", f"cannot reach {s.host}:{s.port}: {exc}")
        else:
            return True
        return False

    def _after_session(self) -> None:
        """Called after every session, however it ended (a subclass resets its connection state)."""

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._session()
            except Exception as exc:  # a bug, or a paho surprise: never let the link's thread die
                self.log.exception("%s session failed", self.thread_name)
                self.set_state("backoff", f"internal error: {exc}")
            self._after_session()
            if self.stopping.is_set():
                break
            deadline = self.clock.monotonic() + self.reconnect.next_delay()
            while not self.stopping.is_set() and self.clock.monotonic() < deadline:
                self.progress_mono = self.clock.monotonic()  # waiting on purpose is progress
                self.stopping.wait(min(LOOP_TURN_S, deadline - self.clock.monotonic()))
        self.set_state("stopped")

    def wake(self, _last_seq: int = 0) -> None:
        """Called by the writer after each commit (any thread)."""
        with contextlib.suppress(BlockingIOError, OSError):  # a wake-up is already pending, or closed
            self._wake_w.send(b"\0")

    def stop(self, timeout: float = 5.0) -> None:
        """Let the link finish (up to `timeout`: in-flight messages, its death message), then close."""
        self.stop_deadline = self.clock.monotonic() + timeout
        self.stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout + 2)
        self.wake_socket.close()
        self._wake_w.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
