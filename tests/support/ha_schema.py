"""Checks of Home Assistant MQTT discovery payloads, written from a reading of Home Assistant's
own discovery schemas (homeassistant/components/mqtt: schemas.py for the device, availability and
origin blocks, sensor.py / binary_sensor.py / event.py for each platform, discovery.py for the topic
format) and the device class / unit tables of the sensor component. HA drops unknown keys silently
(REMOVE_EXTRA), so we refuse them here: a misspelt key would be a silently missing feature.

Not HA's code: our own statement of the rules that matter for what Lintel publishes.
"""

from __future__ import annotations

import json
import re
from typing import Any

TOPIC = re.compile(
    r"^(?P<prefix>[^/#+]+)/(?P<component>\w+)/(?:(?P<node>[a-zA-Z0-9_-]+)/)?(?P<obj>[a-zA-Z0-9_-]+)/config$"
)

COMMON = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "payload_available",
    "payload_not_available",
    "device",
    "enabled_by_default",
    "entity_category",
    "entity_picture",
    "icon",
    "json_attributes_topic",
    "json_attributes_template",
    "name",
    "object_id",
    "default_entity_id",
    "unique_id",
    "origin",
    "qos",
    "encoding",
    "state_topic",
    "value_template",
}
PLATFORM = {
    "sensor": {
        "device_class",
        "expire_after",
        "force_update",
        "last_reset_value_template",
        "options",
        "suggested_display_precision",
        "state_class",
        "unit_of_measurement",
    },
    "binary_sensor": {
        "device_class",
        "expire_after",
        "force_update",
        "off_delay",
        "payload_on",
        "payload_off",
    },
    "event": {"device_class", "event_types"},
}
DEVICE_KEYS = {
    "identifiers",
    "connections",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "hw_version",
    "serial_number",
    "sw_version",
    "via_device",
    "suggested_area",
    "configuration_url",
}
# SensorDeviceClass -> accepted units (the subset of HA's table for the classes Lintel can map to),
# limited to classes Home Assistant 2024.1 knows (the release bench/ha_real.py runs: it refused
# `volume_flow_rate`, added later).
SENSOR_UNITS: dict[str, set[str | None]] = {
    "energy": {"Wh", "kWh", "MWh", "GWh", "MJ", "GJ"},
    "power": {"W", "kW", "MW"},
    "voltage": {"V", "mV", "kV"},
    "current": {"A", "mA"},
    "water": {"L", "m³", "gal", "ft³", "CCF"},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "reactive_power": {"var", "kvar"},
    "apparent_power": {"VA"},
    "power_factor": {"%", None},
    "battery": {"%"},
    "signal_strength": {"dB", "dBm"},
    "temperature": {"°C", "°F", "K"},
    "humidity": {"%"},
    "duration": {"d", "h", "min", "s", "ms"},
    "timestamp": {None},
}
TOTAL_ONLY = {"energy", "water", "gas"}  # HA refuses `measurement` for accumulating classes
NO_STATE_CLASS = {"timestamp", "date", "enum"}
BINARY_CLASSES = {
    "battery",
    "battery_charging",
    "carbon_monoxide",
    "cold",
    "connectivity",
    "door",
    "garage_door",
    "gas",
    "heat",
    "light",
    "lock",
    "moisture",
    "motion",
    "moving",
    "occupancy",
    "opening",
    "plug",
    "power",
    "presence",
    "problem",
    "running",
    "safety",
    "smoke",
    "sound",
    "tamper",
    "update",
    "vibration",
    "window",
}
EVENT_CLASSES = {"button", "doorbell", "motion"}
STATE_CLASSES = {"measurement", "total", "total_increasing", "measurement_angle"}


def _topic_ok(topic: Any, what: str) -> None:
    assert isinstance(topic, str) and topic, f"{what}: a topic is needed"
    assert "+" not in topic and "#" not in topic and "\0" not in topic, f"{what}: {topic!r} is not a topic"
    assert len(topic.encode()) <= 65535


def check(topic: str, payload: bytes) -> dict[str, Any]:
    """Raise AssertionError naming the rule a discovery message breaks; return the parsed config."""
    m = TOPIC.match(topic)
    assert m, f"{topic}: not a discovery topic"
    component = m["component"]
    assert component in PLATFORM, f"{topic}: component {component} not expected from Lintel"
    cfg = json.loads(payload)
    assert isinstance(cfg, dict), f"{topic}: the config must be a JSON object"
    unknown = set(cfg) - COMMON - PLATFORM[component]
    assert not unknown, f"{topic}: keys HA would drop: {unknown}"
    _topic_ok(cfg.get("state_topic"), f"{topic} state_topic")
    assert isinstance(cfg.get("unique_id"), str) and cfg["unique_id"], f"{topic}: unique_id (device registry)"
    dev = cfg.get("device")
    assert isinstance(dev, dict) and not set(dev) - DEVICE_KEYS, f"{topic}: device block"
    ids = dev.get("identifiers")
    assert isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids), f"{topic}: identifiers"
    for key in ("name", "manufacturer", "model", "sw_version", "via_device"):
        assert key not in dev or isinstance(dev[key], str), f"{topic}: device.{key} must be a string"
    origin = cfg.get("origin")
    assert origin is None or (isinstance(origin, dict) and isinstance(origin.get("name"), str))
    avail = cfg.get("availability", [])
    assert not ("availability" in cfg and "availability_topic" in cfg), f"{topic}: exclusive availability"
    for entry in avail:
        assert not set(entry) - {"topic", "payload_available", "payload_not_available", "value_template"}
        _topic_ok(entry.get("topic"), f"{topic} availability")
    assert cfg.get("availability_mode", "latest") in {"all", "any", "latest"}
    assert cfg.get("entity_category") in (None, "diagnostic", "config")
    assert cfg.get("qos", 0) in (0, 1, 2)
    if "json_attributes_template" in cfg:
        _topic_ok(cfg.get("json_attributes_topic"), f"{topic} json_attributes_topic")
    if component == "sensor":
        _sensor(topic, cfg)
    elif component == "binary_sensor":
        assert cfg.get("device_class") in BINARY_CLASSES | {None}, f"{topic}: binary device_class"
    else:
        assert cfg.get("device_class") in EVENT_CLASSES | {None}, f"{topic}: event device_class"
        types = cfg.get("event_types")
        assert isinstance(types, list) and types and all(isinstance(t, str) for t in types)
    return cfg


def _sensor(topic: str, cfg: dict[str, Any]) -> None:
    assert cfg.get("entity_category") != "config", f"{topic}: a sensor cannot be a config entity"
    dc = cfg.get("device_class")
    sc = cfg.get("state_class")
    unit = cfg.get("unit_of_measurement")
    assert sc in STATE_CLASSES | {None}, f"{topic}: state_class {sc}"
    if dc is not None:
        assert dc in SENSOR_UNITS, f"{topic}: device_class {dc} unknown to this check"
        assert unit in SENSOR_UNITS[dc], f"{topic}: unit {unit!r} is not one HA accepts for {dc}"
        if dc in TOTAL_ONLY:
            assert sc in ("total", "total_increasing"), f"{topic}: {dc} needs total or total_increasing"
        if dc in NO_STATE_CLASS:
            assert sc is None, f"{topic}: {dc} cannot have a state_class"
    if "options" in cfg:
        assert dc == "enum" and sc is None and unit is None
