"""The outbox: the single durable truth between the devices and the broker (SQLite, WAL)."""

from gateway.storage.outbox.messages import OutboxLimits
from gateway.storage.outbox.store import OutboxStore, PendingMessage
from gateway.storage.outbox.writer import OutboxWriter

__all__ = ["OutboxLimits", "OutboxStore", "OutboxWriter", "PendingMessage"]
