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


class BridgesSection(StrictModel):
    home_assistant: HomeAssistantBridgeConfig = Field(default_factory=HomeAssistantBridgeConfig)
