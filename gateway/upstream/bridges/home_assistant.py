"""The Home Assistant bridge: MQTT discovery beside the native schema (docs/bridges.md).

- Configs derived from the configuration (gateway health, fire lanes, face entrances, each
  device's connectivity) are published retained on every connection (`on_connect`).
- A meter point or sensor value gets its config the first time a record of it is accepted: a
  retained message in the same outbox commit as that record (durable, ahead of it: EVENT class).
- Lane states, entrance decisions and connectivity changes are bridge messages of their commit.
- Connectivity: a configured device is `ON` from its first record (a reading, an event) or
  `*_online`, `OFF` from `*_offline`; a source (a Modbus bus, a BLE adapter) is `ON` from the first
  record of a device reached through it, `OFF`/`ON` by its own failure and recovery events. The
  retained state is published at every change (the first included) and again on every connection,
  so no connectivity entity stays "unknown" while its device reports (issue 28: healthy devices,
  which never change, had no state).
- Every config ever published is remembered in `<state_dir>/bridges/home_assistant.json`; one whose
  device left the configuration is removed (an empty retained config) on every connection.
Never a face image, a name, a unit number or a resident id: decisions carry kind, door and reason.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from gateway.core import Event, Klass, Reading
from gateway.core.files import replace_durably
from gateway.upstream.bridges.base import BridgeMessage, Group
from gateway.upstream.bridges.config import HomeAssistantBridgeConfig
from gateway.upstream.bridges.ha_discovery import ACCESS_EVENT_TYPES, Discovery
from gateway.upstream.bridges.inventory import Inventory
from gateway.upstream.bridges.mapping import entity_name, point_map
from gateway.upstream.encode import Topics

log = logging.getLogger("lintel.bridges.ha")

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
ONLINE = {"device_online": "ON", "camera_online": "ON", "device_offline": "OFF", "camera_offline": "OFF"}
# a source's own link (a Modbus bus, a BLE adapter): its failure and recovery
ONLINE |= {"bus_unavailable": "OFF", "bus_available": "ON", "ble_adapter_failed": "OFF"}
ONLINE |= {"ble_adapter_recovered": "ON"}
LANE_STATE = {"fire_lane_blocked": "ON", "fire_lane_cleared": "OFF", "fire_lane_unknown": "None"}
ACCESS_ATTRS = ("door", "entrance", "method", "reason", "liveness", "until_ms")  # never resident_id


def _renamed(payload: str, point: str) -> bytes:
    """A remembered config with today's entity name (names lost their unit suffix in issue 28);
    the config as it was when it is not a JSON object."""
    try:
        cfg = json.loads(payload)
    except ValueError:
        return payload.encode()
    if isinstance(cfg, dict) and "name" in cfg:
        cfg["name"] = entity_name(point)
        return _dumps(cfg).encode()
    return payload.encode()


class HomeAssistantBridge:
    name = "home_assistant"

    def __init__(
        self, config: HomeAssistantBridgeConfig, topics: Topics, inventory: Inventory, state_file: Path
    ) -> None:
        self.prefix = config.discovery_prefix
        self.ha_base = f"{topics.base}/ha"
        self.inv = inventory
        self.disc = Discovery(self.prefix, topics, inventory, self.ha_base)
        self.models = dict(inventory.devices)
        self.parents = dict(inventory.parents)
        self.state_file = state_file
        self._lock = threading.Lock()  # the writer thread adds configs, the uplink thread reads them
        self.static: dict[str, bytes] = {}
        for topic, cfg in self._static_configs():
            self.static[topic] = _dumps(cfg).encode()
        self.dynamic: dict[str, tuple[str, str, bytes]] = {}  # topic -> (device id, point, payload)
        self.seen: set[tuple[str, str]] = set()
        self.removed: set[str] = set()
        self.links: dict[str, bytes] = {}  # device id -> its connectivity, b"ON" / b"OFF"
        self.bad_input = 0
        self._load()

    def _static_configs(self) -> list[tuple[str, dict[str, Any]]]:
        out = self.disc.health()
        out += [self.disc.connectivity(dev, model) for dev, model in self.inv.devices]
        out += [self.disc.fire_lane(lane) for lane in self.inv.fire_lanes]
        out += [self.disc.entrance(entrance) for entrance in self.inv.entrances]
        return out

    # -- memory of what was announced -----------------------------------------------------
    def _load(self) -> None:
        try:
            saved = json.loads(self.state_file.read_text())
            announced = saved["announced"]
            removed = saved.get("removed", [])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("home assistant bridge: %s unreadable (%s); starting afresh", self.state_file, exc)
            return
        devices = self.inv.device_ids
        for topic, entry in announced.items():
            if topic in self.static or not isinstance(entry, list) or len(entry) != 3:
                continue
            device, point, payload = entry
            if device in devices and isinstance(point, str) and isinstance(payload, str):
                self.dynamic[topic] = (device, point, _renamed(payload, point))
                self.seen.add((device, point))
            else:  # its device (or lane, entrance) left the configuration
                self.removed.add(topic)
        self.removed |= {t for t in removed if isinstance(t, str)}
        self.removed -= set(self.static) | set(self.dynamic)
        self._save()

    def _save(self) -> None:
        announced: dict[str, list[Any]] = {t: [None, None, ""] for t in self.static}
        for topic, (device, point, payload) in self.dynamic.items():
            announced[topic] = [device, point, payload.decode()]
        body = {"announced": announced, "removed": sorted(self.removed)}
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            replace_durably(self.state_file, _dumps(body).encode())
        except OSError as exc:  # the configs are republished from memory; only removal needs the file
            log.warning("home assistant bridge: cannot save %s: %s", self.state_file, exc)

    # -- the bridge interface ----------------------------------------------------------------
    def retained(self, topic: str) -> bool:
        return topic.startswith(self.prefix + "/") or (
            topic.startswith(self.ha_base + "/") and not topic.endswith("/access")
        )

    def on_connect(self) -> list[BridgeMessage]:
        with self._lock:
            out = [BridgeMessage(t, b"", Klass.EVENT, True) for t in sorted(self.removed)]
            out += [BridgeMessage(t, p, Klass.EVENT, True) for t, p in self.static.items()]
            out += [BridgeMessage(t, p, Klass.EVENT, True) for t, (_d, _p, p) in self.dynamic.items()]
            out += [
                BridgeMessage(self._link_topic(d), state, Klass.EVENT, True)
                for d, state in self.links.items()
            ]
        return out

    def _link_topic(self, device: str) -> str:
        return f"{self.ha_base}/{device}/connectivity"

    def _link(self, device: str, state: bytes, out: list[BridgeMessage]) -> None:
        """The device's connectivity is `state`: published (retained) when it changes."""
        if self.links.get(device) == state:
            return
        with self._lock:
            self.links[device] = state
        out.append(BridgeMessage(self._link_topic(device), state, Klass.EVENT, True))

    def messages(self, group: Group) -> list[BridgeMessage]:
        out: list[BridgeMessage] = []
        added = False
        for record in group.records:
            source = record.source_id
            if source in self.models and source not in self.links:
                if not (isinstance(record, Event) and record.kind in ONLINE):
                    self._link(source, b"ON", out)  # heard from: alive until it says not
                parent = self.parents.get(source)
                if parent is not None and parent not in self.links:
                    self._link(parent, b"ON", out)  # its bus or adapter works: a record came through
            if isinstance(record, Reading):
                if (record.source_id, record.point) not in self.seen:
                    added |= self._discover(record, out)
            elif isinstance(record, Event):
                self._event(record, out)
        if added:
            self._save()
        return out

    def _discover(self, r: Reading, out: list[BridgeMessage]) -> bool:
        if not isinstance(r.value, bool | int | float | str):
            self.bad_input += 1
            return False
        self.seen.add((r.source_id, r.point))
        mapped = point_map(r.point, r.value)
        model = self.models.get(r.source_id, "device")
        topic, cfg = self.disc.point(r.source_id, r.point, mapped, model, r.klass == Klass.TELEMETRY)
        payload = _dumps(cfg).encode()
        with self._lock:
            self.dynamic[topic] = (r.source_id, r.point, payload)
            self.removed.discard(topic)
        out.append(BridgeMessage(topic, payload, Klass.EVENT, True))
        return True

    def _event(self, e: Event, out: list[BridgeMessage]) -> None:
        kind = e.kind
        if kind in ONLINE and e.source_id in self.models:
            self._link(e.source_id, ONLINE[kind].encode(), out)
        elif kind in LANE_STATE and e.source_id in self.inv.fire_lanes:
            dwell = e.attrs.get("dwell_s")
            body = {"state": LANE_STATE[kind], "dwell_s": dwell, "ts_ms": e.ts_ms}
            out.append(
                BridgeMessage(
                    f"{self.ha_base}/{e.source_id}/fire_lane", _dumps(body).encode(), Klass.EVENT, True
                )
            )
        elif kind in ACCESS_EVENT_TYPES and e.source_id in self.inv.entrances:
            body = {"event_type": kind, "ts_ms": e.ts_ms}
            body.update({k: e.attrs[k] for k in ACCESS_ATTRS if k in e.attrs})
            out.append(
                BridgeMessage(
                    f"{self.ha_base}/{e.source_id}/access", _dumps(body).encode(), Klass.EVENT, False
                )
            )
