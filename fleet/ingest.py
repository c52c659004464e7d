"""An ingest worker: MQTT 5 shared subscription in, PostgreSQL out, acknowledged after the commit.

Any number of workers subscribe to `$share/<group>/<prefix>/#`; the broker hands each message to
one of them. A worker holds no state of its own: what it received it writes in one transaction
per batch (fleet.store, exactly once by (gateway_id, seq)) and only then sends the PUBACKs
(paho's manual_ack), in the order the messages came. So:

- killed before the commit: the messages stay unacknowledged in the worker's session on the
  broker. MQTT 5 (4.8.2) leaves a shared-subscription message in flight with the session it was
  sent to, to be redelivered when that session reconnects, and a broker may keep queueing the
  group's messages to a disconnected session. The worker therefore connects with a stable client
  id (`--worker-id`), clean_start=False and a session expiry (`--session-expiry-s`, 1 h), and a
  killed worker must come back under the same id (systemd's `Restart=` does that); a worker
  retired for good should be given its id back once, or its session left to expire.
- killed after the commit, before the PUBACK: the broker redelivers, the ledger finds the key,
  nothing is written twice.
- broker restart: the broker must persist sessions (mosquitto `persistence true`); the worker
  reconnects to its session and subscribes again. PUBACKs for an older connection's messages are
  never sent on a new one (redelivered and deduplicated instead). What the broker routes before
  the workers' shared subscriptions are back is the catch-up session's (fleet/catchup.py).
"""

from __future__ import annotations

import datetime
import logging
import queue
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet import db, probe
from fleet.messages import Message, Rejected, parse
from fleet.store import Store

log = logging.getLogger("lintel.fleet.ingest")


@dataclass
class WorkerSettings:
    dsn: str
    broker: str
    worker_id: str
    group: str = "ingest"
    prefix: str = "lintel"
    batch_max: int = 1000
    batch_wait_s: float = 0.05
    session_expiry_s: int = 3600
    receive_maximum: int = 65535
    inbox_max: int = 4000  # messages held in memory at most; beyond, the socket is not read
    username: str | None = None
    password: str | None = None


@dataclass
class WorkerCounters:
    received: int = 0
    written: int = 0
    duplicates: int = 0
    readings: int = 0
    ignored: int = 0
    batches: int = 0
    db_retries: int = 0
    redelivered: int = 0  # DUP set: the broker sent it before
    stale: int = 0  # arrived on an earlier connection: written, not acknowledged (the broker resends it)
    max_inbox: int = 0  # most messages waiting for a batch at once (the broker's receive window)
    echoed: int = 0  # catch-up probes answered (fleet/probe.py)
    skipped: int = 0  # catch-up only: acknowledged unwritten, the shared group had them too
    rejected: Counter[str] = field(default_factory=Counter)


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.s = settings
        self.counters = WorkerCounters()
        self.stop_event = threading.Event()
        self._inbox: queue.Queue[tuple[int, mqtt.MQTTMessage]] = queue.Queue(maxsize=settings.inbox_max)
        self._generation = 0  # connections so far; a PUBACK goes only on the connection that delivered
        self._conn: psycopg.Connection[Any] | None = None
        self._client: mqtt.Client | None = None

    # --- MQTT side (paho's network thread) -------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        self._generation += 1
        # Subscribed on every connection: mosquitto 2.0 does not save shared subscriptions, so
        # after its restart the session comes back (session present) without them.
        client.subscribe(self._topic_filters(), qos=1)
        log.info(
            "connected to the broker as %s (connection %d, session present: %s)",
            self.s.worker_id,
            self._generation,
            bool(getattr(_f, "session_present", False)),
        )

    def _topic_filters(self) -> list[tuple[str, int]]:
        return [(f"$share/{self.s.group}/{self.s.prefix}/#", 1)]

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        filters = ", ".join(f for f, _ in self._topic_filters())
        if any(r.is_failure for r in reasons):
            log.error(
                "the broker refused the subscription to %s: %s (MQTT 5 broker needed)", filters, reasons
            )
        else:
            self._subscribed(filters)

    def _subscribed(self, filters: str) -> None:
        """In paho's thread, after the SUBACK on the current connection."""
        log.info("subscribed to %s", filters)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # A full inbox blocks paho's network thread, so the socket is not read and the broker keeps
        # the rest: mosquitto 2.0 was measured sending a worker far more than its receive maximum
        # (a 62,000-message backlog grew one worker to 373 MB). PUBACKs still go out meanwhile:
        # the writer thread queues them and the loop sends them once this returns.
        if self._take(msg):
            return
        while not self.stop_event.is_set():
            try:
                self._inbox.put((self._generation, msg), timeout=0.5)
                return
            except queue.Full:
                continue

    def _take(self, msg: mqtt.MQTTMessage) -> bool:
        """Whether this message is settled here, in paho's thread, rather than in a batch."""
        return False

    def _mqtt_client(self) -> mqtt.Client:
        url = urlsplit(self.s.broker)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.s.worker_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        if url.scheme == "mqtts":
            client.tls_set()
        if self.s.username:
            client.username_pw_set(self.s.username, self.s.password)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(1, 5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.s.session_expiry_s
        props.ReceiveMaximum = self.s.receive_maximum
        client.connect_async(
            url.hostname or "127.0.0.1",
            url.port or (8883 if url.scheme == "mqtts" else 1883),
            30,
            clean_start=False,
            properties=props,
        )
        return client

    # --- database side (the worker's own thread) -------------------------------------------------
    def _db(self) -> psycopg.Connection[Any]:
        while self._conn is None or self._conn.closed:
            try:
                self._conn = db.connect(self.s.dsn, autocommit=True)  # Store opens its transactions
            except psycopg.OperationalError as exc:
                log.warning("cannot reach PostgreSQL (%s); retrying", str(exc).strip()[:200])
                self.stop_event.wait(1.0)
                if self.stop_event.is_set():
                    raise
        return self._conn

    def _next_batch(self) -> list[tuple[int, mqtt.MQTTMessage]]:
        try:
            first = self._inbox.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        self.counters.max_inbox = max(self.counters.max_inbox, self._inbox.qsize() + 1)
        deadline = time.monotonic() + self.s.batch_wait_s
        while len(batch) < self.s.batch_max:
            left = deadline - time.monotonic()
            try:
                batch.append(self._inbox.get(timeout=max(left, 0)) if left > 0 else self._inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _to_write(self, batch: list[tuple[int, mqtt.MQTTMessage]]) -> list[mqtt.MQTTMessage]:
        """The messages of a batch to check and write; a catch-up probe is answered instead."""
        out, probe_on = [], probe.probe_topic(self.s.prefix)
        for _, msg in batch:
            if msg.topic != probe_on:
                out.append(msg)
            elif self._client is not None and probe.answer(self._client, self.s.prefix, bytes(msg.payload)):
                self.counters.echoed += 1
            else:
                self.counters.rejected["malformed catch-up probe"] += 1
        return out

    def _check(self, messages: list[mqtt.MQTTMessage]) -> list[Message]:
        checked = []
        for msg in messages:
            parsed = parse(msg.topic, bytes(msg.payload))
            if isinstance(parsed, Message):
                checked.append(parsed)
            elif isinstance(parsed, Rejected):
                if self.counters.rejected[parsed.reason] == 0:
                    log.warning(
                        "rejected a message on %s: %s (counted from now on)",
                        parsed.topic[:200],
                        parsed.reason,
                    )
                self.counters.rejected[parsed.reason] += 1
            else:
                self.counters.ignored += 1
        return checked

    def _write(self, messages: list[Message]) -> None:
        """Write until it is committed (or we are stopping): the batch is never acknowledged unwritten."""
        while True:
            conn = self._db()
            try:
                result = Store(conn).write(messages)
            except (
                psycopg.OperationalError,
                psycopg.errors.DeadlockDetected,
                psycopg.errors.SerializationFailure,
            ) as exc:
                self.counters.db_retries += 1
                log.warning("batch not written (%s); retrying", str(exc).strip()[:200])
                if conn.closed or isinstance(exc, psycopg.OperationalError):
                    conn.close()
                if self.stop_event.wait(0.2):
                    raise
                continue
            self.counters.written += result.new
            self.counters.duplicates += result.duplicates
            self.counters.readings += result.readings
            return

    def _handle(self, batch: list[tuple[int, mqtt.MQTTMessage]]) -> None:
        """Write a batch, then acknowledge it in order (only on the connection that delivered it)."""
        self.counters.received += len(batch)
        self.counters.redelivered += sum(1 for _, m in batch if m.dup)
        self.counters.stale += sum(1 for g, _ in batch if g != self._generation)
        self._write(self._check(self._to_write(batch)))
        self.counters.batches += 1
        assert self._client is not None
        for generation, msg in batch:
            if generation == self._generation:
                self._client.ack(msg.mid, msg.qos)

    def _tick(self) -> None:
        """Called by the writer thread between batches (and at least every half second)."""

    def _log_counters(self, what: str) -> None:
        counts = {k: v for k, v in vars(self.counters).items() if k != "rejected"}
        counts["rejected"] = sum(self.counters.rejected.values())
        log.info("%s: %s", what, ", ".join(f"{k} {v}" for k, v in counts.items()))

    def run(self) -> None:
        conn = self._db()
        db.migrate(conn)
        db.ensure_partitions(conn, datetime.date.today())
        client = self._client = self._mqtt_client()
        client.loop_start()
        last_log = time.monotonic()
        try:
            while not self.stop_event.is_set():
                batch = self._next_batch()
                if batch:
                    try:
                        self._handle(batch)
                    except Exception:
                        if self.stop_event.is_set():
                            break  # unacknowledged: the broker redelivers
                        raise
                self._tick()
                if time.monotonic() - last_log > 60:
                    last_log = time.monotonic()
                    self._log_counters("so far")
        finally:
            self._log_counters("stopping")
            client.disconnect()
            client.loop_stop()
            if self._conn is not None:
                self._conn.close()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
