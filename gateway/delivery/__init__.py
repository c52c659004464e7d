"""The uplink: drains the outbox to an MQTT broker, deleting only what the broker acknowledged."""

from gateway.delivery.client import Uplink, UplinkSettings

__all__ = ["Uplink", "UplinkSettings"]
