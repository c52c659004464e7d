"""Lintel edge gateway: devices -> records -> SQLite outbox -> MQTT uplink."""

__version__ = "0.1.0"
