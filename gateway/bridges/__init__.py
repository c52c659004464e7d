"""Bridges: conventions (Home Assistant discovery, ...) published beside the native schema."""

from gateway.bridges.base import Bridge, BridgeMessage, Bridges, Group
from gateway.bridges.config import BridgesSection, HomeAssistantBridgeConfig, SparkplugBridgeConfig
from gateway.bridges.inventory import Inventory

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
