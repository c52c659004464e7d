"""The outbox's Sparkplug rows as the link publishes them: read in seq order, given their `seq`.

Rows are stored by the bridge (gateway/upstream/bridges/sparkplug.py) without `seq`. A row committed after
the session's births (its *boundary*) goes out as stored with `seq` appended. A row up to the
boundary was meant for an earlier session: a DDEATH is superseded by the new births (who is alive
is in them); a DDATA, and the readings a DBIRTH carried, go out as a DDATA of history.
"""

from __future__ import annotations

from collections.abc import Set

from gateway.core import Klass
from gateway.delivery.queues import RowCursor
from gateway.storage.outbox.store import OutboxReader, PendingMessage
from gateway.upstream.bridges import sparkplug_pb as pb


def outgoing(
    msg: PendingMessage, held: bool, seq: int, retired: Set[str] = frozenset()
) -> tuple[str, bytes] | None:
    """(topic, payload) of a stored row published with `seq`; None when superseded. `held`: the
    row is up to the session's boundary. A held DDATA of a device that left the configuration
    (`retired`: not born in this session) is superseded too: the host could not resolve its aliases
    (its readings went out natively). A held NDATA is superseded by the NBIRTH's health values.
    Raises protobuf's DecodeError for a row that is not a Sparkplug payload (a crc-checked row of
    our own: only a bug could make one)."""
    if not held:
        return msg.topic, pb.with_seq(msg.payload, seq)
    parts = msg.topic.split("/")
    if len(parts) != 5 or parts[2] != "DDATA" or parts[4] in retired:
        return None
    return msg.topic, pb.as_historical(msg.payload, seq)


def sparkplug_rows(reader: OutboxReader) -> RowCursor:
    """The Sparkplug rows of the outbox (class telemetry, topics `spBv1.0/`), oldest first."""
    return RowCursor(reader, Klass.TELEMETRY, 0, None, sparkplug=True)
