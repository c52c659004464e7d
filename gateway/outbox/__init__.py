"""The outbox: the single durable truth between the devices and the broker (SQLite, WAL)."""

from gateway.outbox.messages import OutboxLimits
from gateway.outbox.store import OutboxStore, PendingMessage
from gateway.outbox.writer import OutboxWriter

__all__ = ["OutboxLimits", "OutboxStore", "OutboxWriter", "PendingMessage"]
