"""Builds the enabled bridges of a gateway from its validated config (gateway.upstream.bridges)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway import __version__
from gateway.config import LoadedConfig
from gateway.core import Clock
from gateway.delivery import UplinkSettings
from gateway.storage.outbox import OutboxWriter
from gateway.upstream.bridges import Bridges, Inventory
from gateway.upstream.bridges.home_assistant import HomeAssistantBridge
from gateway.upstream.encode import Topics

if TYPE_CHECKING:
    from gateway.delivery.sparkplug_link import SparkplugLink


def inventory(loaded: LoadedConfig) -> Inventory:
    """Ids of the devices, lanes and entrances of the config (enabled or not: a device switched
    off keeps its entities, shown unavailable-by-silence, rather than losing its history)."""
    config = loaded.config
    devices: list[tuple[str, str]] = []
    parents: list[tuple[str, str]] = []
    for source in config.sources:
        for _key, device_id in source.device_ids():
            devices.append((device_id, source.type))
            if device_id != source.id:
                parents.append((device_id, source.id))
    return Inventory(
        site=config.gateway.site,
        gateway_id=config.gateway.id,
        version=__version__,
        devices=tuple(devices),
        fire_lanes=tuple(lane.id for lane in config.fire_lanes),
        entrances=tuple(e.id for e in config.face_access),
        parents=tuple(parents),
    )


def build_bridges(loaded: LoadedConfig, topics: Topics) -> Bridges:
    """The bridges `[bridges.*]` enables (none by default)."""
    section = loaded.config.bridges
    bridges = Bridges()
    if section.home_assistant.enabled:
        state_file = loaded.state_dir / "bridges" / "home_assistant.json"
        ha = HomeAssistantBridge(section.home_assistant, topics, inventory(loaded), state_file)
        bridges.items.append(ha)
    if section.sparkplug.enabled:
        # protobuf is imported only when the Sparkplug bridge is on
        from gateway.upstream.bridges.inventory import safe_id
        from gateway.upstream.bridges.sparkplug import SparkplugBridge, SpbTopics
        from gateway.upstream.bridges.sparkplug_model import NodeModel

        spb = section.sparkplug
        config = loaded.config
        gw = config.gateway
        spb_topics = SpbTopics(spb.group_id or gw.site, spb.node_id or gw.id)
        # every id a record can come from: a device left out of the configuration is not born
        ids = inventory(loaded).device_ids | {d.id for d in config.doors} | {"gateway", gw.id}
        ids |= {h.id for h in config.care.households} if config.care is not None else set()
        model = NodeModel(loaded.state_dir / "bridges" / "sparkplug.json", {safe_id(i) for i in ids})
        bridges.items.append(SparkplugBridge(spb_topics, model))
    return bridges


def build_sparkplug_link(
    loaded: LoadedConfig, bridges: Bridges, settings: UplinkSettings, writer: OutboxWriter, clock: Clock
) -> SparkplugLink | None:
    """The Sparkplug link (its own MQTT connection) when the Sparkplug bridge is on."""
    from gateway.upstream.bridges.sparkplug import SparkplugBridge

    spb = next((b for b in bridges.items if isinstance(b, SparkplugBridge)), None)
    if spb is None:
        return None
    from gateway.delivery.sparkplug_link import SparkplugLink

    section = loaded.config.bridges.sparkplug
    return SparkplugLink(
        settings,
        writer,
        clock,
        spb,
        section.primary_host_id,
        qos=section.qos,
        state_skew_s=section.state_skew_s,
    )
