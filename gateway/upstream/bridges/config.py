"""Config of the bridges: `[bridges.<name>]`, every bridge off unless its section says otherwise."""

from __future__ import annotations

from typing import Annotated, Literal

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
    qos: Literal[0, 1] = Field(
        0,
        description="QoS of births, DDATA and DDEATH: 0 as the spec requires (rows leave the outbox "
        "once sent; a host detects a loss by seq and asks for a rebirth), or 1 (rows leave on "
        "PUBACK: every accepted reading reaches the broker; a deviation from the spec).",
    )
    state_skew_s: float = Field(
        300,
        ge=1,
        le=86_400,
        description="A primary host STATE stamped later than now + this is ignored (counted).",
    )


class BridgesSection(StrictModel):
    home_assistant: HomeAssistantBridgeConfig = Field(default_factory=HomeAssistantBridgeConfig)
    sparkplug: SparkplugBridgeConfig = Field(default_factory=SparkplugBridgeConfig)
