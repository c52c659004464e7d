"""Config of the bridges: `[bridges.<name>]`, every bridge off unless its section says otherwise."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from gateway.core.config_base import StrictModel

TOPIC_SEGMENT = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class HomeAssistantBridgeConfig(StrictModel):
    enabled: bool = Field(
        False, description="Publish Home Assistant MQTT discovery beside the native schema."
    )
    discovery_prefix: Annotated[str, Field(pattern=TOPIC_SEGMENT)] = Field(
        "homeassistant", description="Home Assistant's discovery prefix (its MQTT integration setting)."
    )


class SparkplugBridgeConfig(StrictModel):
    enabled: bool = Field(
        False, description="Publish Sparkplug B 3.0 (a second MQTT connection to the same broker)."
    )
    group_id: Annotated[str, Field(pattern=TOPIC_SEGMENT)] | None = Field(
        None, description="Sparkplug group id (default: the gateway's site)."
    )
    node_id: Annotated[str, Field(pattern=TOPIC_SEGMENT)] | None = Field(
        None, description="Sparkplug edge node id (default: the gateway's id)."
    )
    primary_host_id: Annotated[str, Field(pattern=TOPIC_SEGMENT)] | None = Field(
        None,
        description="A primary host application's id: births and data wait until its retained "
        "spBv1.0/STATE/{id} says online, and the session ends (NDEATH) when it goes offline.",
    )


class BridgesSection(StrictModel):
    home_assistant: HomeAssistantBridgeConfig = Field(default_factory=HomeAssistantBridgeConfig)
    sparkplug: SparkplugBridgeConfig = Field(default_factory=SparkplugBridgeConfig)
