"""Home Assistant MQTT discovery payloads (docs/bridges.md lists every entity).

Topics: `{prefix}/{component}/{node}/{object}/config` with node `lintel_{site}_{gateway}` and object
`{device}_{what}`. One HA device per physical device (meter, sensor, camera, lane, entrance) with
`via_device` the gateway's HA device. Every entity is available while the gateway's retained native
`status` topic says `online`. Readings are read from the native telemetry and state topics with
`value_template`s (no extra message per reading); only what the native schema spreads over several
topics (a lane's state, an entrance's last decision, a device's connectivity) gets a bridge topic.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.upstream.bridges.inventory import Inventory, safe_id
from gateway.upstream.bridges.mapping import PointMap, entity_name
from gateway.upstream.encode import Topics

ACCESS_EVENT_TYPES = ("access_granted", "access_denied", "access_lockout")
LANE_ATTRS = "{{ {'dwell_s': value_json.dwell_s, 'since_ms': value_json.ts_ms} | tojson }}"
LAST_SEEN = "{{ (value_json.ts_ms / 1000) | timestamp_custom('%Y-%m-%dT%H:%M:%S+00:00', false) }}"


def _last_reading(point: str, binary: bool) -> str:
    # A telemetry message may hold several readings of one point (polls batched in one commit) or
    # none: render the newest good one, or nothing (HA ignores an empty render).
    value = "('ON' if ns.v else 'OFF')" if binary else "ns.v"
    return (
        "{% set ns = namespace(v=none) %}"
        f"{{% for r in value_json.readings if r.point == {json.dumps(point)} and r.quality is not defined %}}"
        "{% set ns.v = r.value %}{% endfor %}"
        f"{{{{ '' if ns.v is none else {value} }}}}"
    )


def _state_value(binary: bool) -> str:
    value = "('ON' if value_json.value else 'OFF')" if binary else "value_json.value"
    return f"{{{{ '' if value_json.quality is defined else {value} }}}}"


# Dropped records: every `dropped` counter but the Sparkplug bridge's rows (`<class>.sparkplug_*`,
# rows that carry no records: their readings are counted with the native rows).
RECORDS_DROPPED = (
    "{% set ns = namespace(n=0) %}{% for k, v in value_json.outbox.dropped.items() %}"
    "{% if '.sparkplug_' not in k %}{% set ns.n = ns.n + v %}{% endif %}{% endfor %}{{ ns.n }}"
)


class Discovery:
    """Builds (topic, payload) pairs of one gateway's discovery configs."""

    def __init__(self, prefix: str, topics: Topics, inv: Inventory, ha_base: str) -> None:
        self.prefix = prefix
        self.topics = topics
        self.inv = inv
        self.ha_base = ha_base
        self.node = safe_id(f"lintel_{inv.site}_{inv.gateway_id}")
        self.gateway_device = {
            "identifiers": [self.node],
            "name": f"Lintel {inv.gateway_id}",
            "manufacturer": "Lintel",
            "model": "Lintel gateway",
            "sw_version": inv.version,
        }
        self.origin = {"name": "Lintel", "sw_version": inv.version}

    def topic(self, component: str, device: str, what: str) -> str:
        return f"{self.prefix}/{component}/{self.node}/{safe_id(device)}_{safe_id(what)}/config"

    def device(self, device_id: str, model: str) -> dict[str, Any]:
        return {
            "identifiers": [f"{self.node}_{safe_id(device_id)}"],
            "name": device_id,
            "manufacturer": "Lintel",
            "model": model,
            "via_device": self.node,
        }

    def _entity(self, device_id: str | None, what: str, device: dict[str, Any]) -> dict[str, Any]:
        uid = f"{self.node}_{safe_id(device_id)}" if device_id else self.node
        uid = f"{uid}_{safe_id(what)}"
        return {
            "name": entity_name(what),
            "unique_id": uid,
            "device": device,
            "origin": self.origin,
            "availability": [{"topic": self.topics.status, "value_template": "{{ value_json.state }}"}],
            "qos": 1,
        }

    # -- entities ---------------------------------------------------------------------------
    def point(
        self, source_id: str, point: str, mapped: PointMap, model: str, telemetry: bool
    ) -> tuple[str, dict[str, Any]]:
        binary = mapped.component == "binary_sensor"
        cfg = self._entity(source_id, point, self.device(source_id, model))
        if telemetry:
            cfg["state_topic"] = self.topics.telemetry(source_id)
            cfg["value_template"] = _last_reading(point, binary)
        else:
            cfg["state_topic"] = self.topics.state(source_id, point)
            cfg["value_template"] = _state_value(binary)
        for key, value in (
            ("device_class", mapped.device_class),
            ("unit_of_measurement", mapped.unit),
            ("state_class", None if binary else mapped.state_class),
            ("entity_category", mapped.category),
        ):
            if value is not None:
                cfg[key] = value
        return self.topic(mapped.component, source_id, point), cfg

    def connectivity(self, device_id: str, model: str) -> tuple[str, dict[str, Any]]:
        cfg = self._entity(device_id, "connectivity", self.device(device_id, model))
        cfg.update(
            state_topic=f"{self.ha_base}/{device_id}/connectivity",
            device_class="connectivity",
            entity_category="diagnostic",
        )
        return self.topic("binary_sensor", device_id, "connectivity"), cfg

    def fire_lane(self, lane: str) -> tuple[str, dict[str, Any]]:
        cfg = self._entity(lane, "blocked", self.device(lane, "fire lane"))
        state = f"{self.ha_base}/{lane}/fire_lane"
        cfg.update(
            state_topic=state,
            value_template="{{ value_json.state }}",
            device_class="problem",
            json_attributes_topic=state,
            json_attributes_template=LANE_ATTRS,
        )
        return self.topic("binary_sensor", lane, "blocked"), cfg

    def entrance(self, entrance: str) -> tuple[str, dict[str, Any]]:
        cfg = self._entity(entrance, "decision", self.device(entrance, "face entrance"))
        cfg.update(state_topic=f"{self.ha_base}/{entrance}/access", event_types=list(ACCESS_EVENT_TYPES))
        return self.topic("event", entrance, "decision"), cfg

    def health(self) -> list[tuple[str, dict[str, Any]]]:
        """Gateway health, from the native stats message (every mqtt.stats_interval_s)."""
        out = []
        specs: list[tuple[str, dict[str, Any]]] = [
            (
                "outbox_backlog",
                {
                    "value_template": "{{ value_json.outbox.rows.values() | sum }}",
                    "unit_of_measurement": "messages",
                    "state_class": "measurement",
                },
            ),
            (
                "records_dropped",
                {
                    "value_template": RECORDS_DROPPED,
                    "unit_of_measurement": "records",
                    "state_class": "total_increasing",
                },
            ),
            (
                "open_alarms",
                {
                    "value_template": "{{ value_json.open_alarms.count }}",
                    "unit_of_measurement": "alarms",
                    "state_class": "measurement",
                    "json_attributes_topic": self.topics.stats,
                    "json_attributes_template": "{{ value_json.open_alarms | tojson }}",
                    "entity_category": None,  # an alarm is the building's business, not diagnostics
                },
            ),
            ("uplink", {"value_template": "{{ value_json.uplink.state }}"}),
            ("last_seen", {"device_class": "timestamp", "value_template": LAST_SEEN}),
        ]
        for what, extra in specs:
            cfg = self._entity(None, what, self.gateway_device)
            fields = {"state_topic": self.topics.stats, "entity_category": "diagnostic", **extra}
            cfg.update({k: v for k, v in fields.items() if v is not None})
            out.append((f"{self.prefix}/sensor/{self.node}/{what}/config", cfg))
        return out
