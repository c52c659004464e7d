"""The uplink: drains the outbox to an MQTT broker, deleting only what the broker acknowledged."""

from gateway.uplink.client import Uplink, UplinkSettings

__all__ = ["Uplink", "UplinkSettings"]
