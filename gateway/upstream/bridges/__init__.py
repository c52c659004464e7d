"""Bridges: conventions (Home Assistant discovery, ...) published beside the native schema."""

from gateway.upstream.bridges.base import Bridge, BridgeMessage, Bridges, Group
from gateway.upstream.bridges.config import BridgesSection, HomeAssistantBridgeConfig, SparkplugBridgeConfig
from gateway.upstream.bridges.inventory import Inventory

__all__ = [
    "Bridge",
    "BridgeMessage",
    "Bridges",
    "BridgesSection",
    "Group",
    "HomeAssistantBridgeConfig",
    "Inventory",
    "SparkplugBridgeConfig",
]
