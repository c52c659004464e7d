"""The catch-up session: writes what the broker routed while the shared group was missing.

Why it exists: mosquitto 2.0 (Debian bookworm's 2.0.11; the sources up to 2.0.20 read the same) saves
sessions, their queued messages and their *normal* subscriptions in its persistence file, but not
their *shared* ones. After a broker restart each worker's session comes back without its
`$share/...` subscription until the worker reconnects and subscribes again; whatever the gateways
publish in between matches no subscription, the broker acknowledges it to the gateway (PUBACK
"no matching subscribers" is still a success) and drops it, and the gateway deletes it from its
outbox. Thousands of messages were lost this way in one clean restart under load.

What it does: one session with a stable id holds a *normal* (non-shared) QoS 1 subscription to
`{prefix}/#`. mosquitto saves that one, so after a restart every message is queued to this
session until it reconnects, the gap included. On each connection it writes everything it
receives (exactly once by the ledger's key, so the copies the workers also write cost only time),
and sends probes (fleet/probe.py) until the echo of one comes back on this same connection: from
there on in its stream, everything was also routed to the shared group, and it acknowledges
messages without writing them. A new connection (the broker restarted, or this process did)
starts writing again, and so does a probe that has not come back for `echo_timeout_s` (60 s): no
worker is answering, and every worker down past its session expiry would leave no group at all.

Cost: the broker routes each message twice and this process reads it; PostgreSQL sees nothing of
it while the group is receiving. Run exactly one per fleet under a stable `--id` (systemd
`Restart=always`), like a worker.
What it does not cover: a broker that loses its state (a crash between autosaves, a lost disk).
"""

from __future__ import annotations

import logging
import time

import paho.mqtt.client as mqtt

from fleet import probe
from fleet.ingest import Worker, WorkerSettings

log = logging.getLogger("lintel.fleet.catchup")
NONCES_KEPT = 64


class CatchUp(Worker):
    """`probe_every_s` while writing; once caught up, a probe every `recheck_s`, and when none has
    come back for `echo_timeout_s` (no worker answering: all stopped, or too slow) it writes again."""

    def __init__(
        self,
        settings: WorkerSettings,
        probe_every_s: float = 1.0,
        recheck_s: float = 10.0,
        echo_timeout_s: float = 60.0,
    ) -> None:
        super().__init__(settings)
        self.probe_every_s, self.recheck_s, self.echo_timeout_s = probe_every_s, recheck_s, echo_timeout_s
        self._echo_topic = probe.echo_topic(settings.prefix, settings.worker_id)
        self._probe_topic = probe.probe_topic(settings.prefix)
        self._nonces: dict[str, int] = {}  # nonce -> the connection it was sent on (writer thread only)
        self._subscribed_on = 0  # the connection whose SUBACK came last (set in paho's thread)
        self._caught_up_on = 0  # the connection on which an echo came back: after it, nothing is written
        self._last_probe = 0.0
        self._last_echo = 0.0  # monotonic time of the last valid echo (paho's thread)

    def _topic_filters(self) -> list[tuple[str, int]]:
        return [(f"{self.s.prefix}/#", 1), (self._echo_topic, 1)]

    def _subscribed(self, filters: str) -> None:
        super()._subscribed(filters)
        self._subscribed_on = self._generation
        log.info("connection %d: writing what arrives until a probe comes back", self._generation)

    def _tick(self) -> None:
        connection, now = self._generation, time.monotonic()
        if self._subscribed_on != connection or self._client is None:
            return
        caught_up = self._caught_up_on == connection
        if caught_up and now - self._last_echo > self.echo_timeout_s:
            # No worker has answered for a while: the group may be gone (every worker down past its
            # session expiry leaves nobody to queue to). Writing is always safe; the next echo ends it.
            self._caught_up_on = 0
            log.warning(
                "connection %d: no probe came back for %.0f s: writing what arrives",
                connection,
                self.echo_timeout_s,
            )
        if now - self._last_probe < (self.recheck_s if caught_up else self.probe_every_s):
            return
        nonce = probe.new_nonce()
        self._nonces[nonce] = connection
        while len(self._nonces) > NONCES_KEPT:
            del self._nonces[next(iter(self._nonces))]
        self._client.publish(self._probe_topic, probe.probe_payload(self.s.worker_id, nonce), qos=1)
        self._last_probe = now

    def _take(self, msg: mqtt.MQTTMessage) -> bool:
        # In paho's thread, in the order the broker queued the messages to this session: the order
        # decides. Decided here so that skipping costs no queue, no batch, no second thread.
        connection = self._generation
        if msg.topic == self._echo_topic:
            nonce = probe.parse_echo(bytes(msg.payload))
            if nonce is not None and self._nonces.get(nonce) == connection:
                self._last_echo = time.monotonic()
                if self._caught_up_on != connection:
                    self._caught_up_on = connection
                    log.info("connection %d: caught up (the shared group receives); skipping now", connection)
        elif msg.topic == self._probe_topic:
            pass  # ours, on its way to the group
        elif connection == self._caught_up_on:
            self.counters.skipped += 1
        else:
            return False  # written in a batch, like a worker's
        if self._client is not None:
            self._client.ack(msg.mid, msg.qos)
        return True
