"""Strict class order in the backlog drain (README clause 5), on a real outbox file.

The drain's rate-limit token used to be asked for once per class in one pick: when the state
backlog found none and the bucket refilled before the telemetry backlog asked, telemetry went
ahead of state. The bucket here is scripted (our own interface) to refill exactly between two asks.
"""

from __future__ import annotations

from pathlib import Path

from gateway.core import Klass, Reading, SystemClock
from gateway.delivery.queues import QueueScheduler, TokenBucket
from gateway.storage.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.storage.outbox.store import OutboxReader
from gateway.upstream.encode import Encoder, Topics

ENC = Encoder(Topics("lintel", "site-a", "gw-test"))


class RefillsBetweenAsks(TokenBucket):
    """Every other ask finds a token: one refill lands between any two asks."""

    def __init__(self) -> None:
        super().__init__(100.0, SystemClock())
        self.asks = 0
        self.always = True  # until the script starts

    def take(self) -> bool:
        if self.always:
            return True
        self.asks += 1
        return self.asks % 2 == 0


def test_the_state_backlog_drains_before_any_telemetry_backlog(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    w = OutboxWriter(
        OutboxStore(db), ENC, SystemClock(), OutboxLimits(commit_window_s=0.01, batch_max_readings=1)
    )
    w.start()
    for i in range(30):
        w.submit(Reading(f"m{i}", "power_w", float(i), 1_700_000_000_000 + i))  # telemetry first ...
        w.submit(Reading("door", "open", float(i % 2), 1_700_000_000_000 + i, klass=Klass.STATE))
    assert w.flush()
    reader = OutboxReader(db)
    try:
        lanes = QueueScheduler(reader, w.last_seq, 100.0)
        lanes.bucket = bucket = RefillsBetweenAsks()
        # One pick with tokens at hand: the empty event backlog is found empty (as after any pick).
        first = lanes.next()
        order = [first.klass] if first is not None else []
        bucket.always = False
        for _ in range(1000):
            msg = lanes.next()
            if msg is not None:
                order.append(msg.klass)
            if not lanes.backlog_left:
                break
        assert order.count(Klass.STATE) == 30 and order.count(Klass.TELEMETRY) == 30
        assert order == [Klass.STATE] * 30 + [Klass.TELEMETRY] * 30
    finally:
        reader.close()
        w.stop()
