"""The Sparkplug B bridge: accepted records as DDATA / DBIRTH / DDEATH rows of the outbox.

Runs in the writer thread (`messages`), inside the commit that accepts the records, so what it
returns is durable exactly when they are. Its rows (topics `spBv1.0/...`, class telemetry, no `seq`
yet) are sent only by the Sparkplug link (gateway/delivery/sparkplug_link.py), which appends `seq` at
publish time and publishes the NBIRTH and the births of every known device on each connection; the
native session never sends them. Per commit and device, in the order of the records:
- before the first record of a device that gets a new metric in this commit, or that was dead: one
  DBIRTH row (every metric of the device, the new ones included, with its current value: `is_null`
  until measured);
- the readings and events: one DDATA row per device (aliases only, each value with its own
  timestamp), so every accepted reading is in a DDATA row and a DBIRTH never carries the only copy;
- `device_offline` / `camera_offline`: a DDEATH row (after the device's DDATA so far);
  `*_online`: a DBIRTH row;
- other events and alarms: metrics `Events/{kind}` / `Alarms/{kind}` (String: JSON of the
  severity and the scalar attributes; never a resident id, a name or a unit number);
- each native stats body of the commit: an NDATA row of the node's health metrics
  (`Health/...`, born in the NBIRTH).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from gateway.core import Event, Klass, Reading
from gateway.upstream.bridges import sparkplug_pb as pb
from gateway.upstream.bridges.base import BridgeMessage, Group
from gateway.upstream.bridges.inventory import safe_id
from gateway.upstream.bridges.mapping import sparkplug_event_metric, sparkplug_metric
from gateway.upstream.bridges.sparkplug_model import BD_SEQ_ALIAS, REBIRTH_ALIAS, NodeModel, Slot

log = logging.getLogger("lintel.bridges.sparkplug")

NAMESPACE = "spBv1.0"
DATATYPE = {"Int64": pb.INT64, "UInt64": pb.UINT64, "Double": pb.DOUBLE, "Boolean": pb.BOOLEAN}
DATATYPE["String"] = pb.STRING
OFFLINE = {"device_offline", "camera_offline"}
ONLINE = {"device_online", "camera_online"}
PRIVATE = {"resident_id", "resident", "name", "unit", "person", "image", "face", "vector"}
REBIRTH = "Node Control/Rebirth"
BD_SEQ = "bdSeq"


class SpbTopics:
    def __init__(self, group: str, node: str) -> None:
        self.group, self.node = group, node
        self.base = f"{NAMESPACE}/{group}"

    def node_topic(self, verb: str) -> str:
        return f"{self.base}/{verb}/{self.node}"

    def device_topic(self, verb: str, device: str) -> str:
        return f"{self.base}/{verb}/{self.node}/{device}"

    @staticmethod
    def state(host_id: str) -> str:
        return f"{NAMESPACE}/STATE/{host_id}"


def coerce(datatype: str, value: Any) -> tuple[bool, Any]:
    """(ok, value) of `value` as a metric of `datatype` (fixed at birth)."""
    if datatype == "Boolean":
        return isinstance(value, bool), value
    if datatype == "String":
        return isinstance(value, str), value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False, None
    if datatype == "Double":
        return True, float(value)
    if isinstance(value, float) and not value.is_integer():
        return False, None
    n = int(value)
    return (n >= 0 if datatype == "UInt64" else -(2**63) <= n < 2**63), n


def _event_text(e: Event) -> str:
    attrs = {k: v for k, v in e.attrs.items() if k not in PRIVATE and isinstance(v, str | int | float | bool)}
    return json.dumps({"severity": e.severity, "attrs": attrs}, separators=(",", ":"), sort_keys=True)


def birth_metric(s: Slot, now_ms: int) -> pb.M:
    """A metric of a DBIRTH: name, datatype, current value (a null one stamped with the birth)."""
    return pb.M(s.alias, s.value, s.ts_ms or now_ms, DATATYPE[s.datatype], s.name)


def node_birth(bd_seq: int, now_ms: int, health: list[Slot] | None = None) -> bytes:
    """NBIRTH (seq 0): bdSeq and `Node Control/Rebirth` = false, both with names and aliases, and
    the gateway's health metrics (`health`, last known values: null until the first stats)."""
    metrics = [
        pb.M(BD_SEQ_ALIAS, bd_seq, now_ms, pb.INT64, BD_SEQ),
        pb.M(REBIRTH_ALIAS, False, now_ms, pb.BOOLEAN, REBIRTH),
        *(birth_metric(s, now_ms) for s in health or ()),
    ]
    return pb.encode(now_ms, metrics, seq=0, births=True)


def health_values(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The node's health metrics of one native stats body (a missing or odd part: left out)."""
    out: dict[str, Any] = {}
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        out["Health/uptime_s"] = float(stats["uptime_s"])
    with contextlib.suppress(TypeError, ValueError, AttributeError, KeyError):
        out["Health/outbox_backlog"] = sum(int(n) for n in stats["outbox"]["rows"].values())
    with contextlib.suppress(TypeError, ValueError, AttributeError, KeyError):
        dropped = stats["outbox"]["dropped"].items()  # records; not the bridge's own rows
        out["Health/records_dropped"] = sum(int(n) for k, n in dropped if ".sparkplug_" not in k)
    with contextlib.suppress(TypeError, ValueError, AttributeError, KeyError):
        out["Health/open_alarms"] = int(stats["open_alarms"]["count"])
    with contextlib.suppress(TypeError, AttributeError, KeyError):
        state = stats["uplink"]["state"]
        if isinstance(state, str):
            out["Health/uplink"] = state
    return out


def node_death(bd_seq: int, now_ms: int) -> bytes:
    """NDEATH: the bdSeq metric only, no seq (the spec)."""
    return pb.encode(now_ms, [pb.M(BD_SEQ_ALIAS, bd_seq, now_ms, pb.INT64, BD_SEQ)], births=True)


def device_birth(slots: list[Slot], now_ms: int) -> bytes:
    return pb.encode(now_ms, [birth_metric(s, now_ms) for s in slots], births=True)


class SparkplugBridge:
    name = "sparkplug"

    def __init__(self, topics: SpbTopics, model: NodeModel) -> None:
        self.topics = topics
        self.model = model
        self.bad_input = 0

    def retained(self, topic: str) -> bool:
        return False

    def on_connect(self) -> list[BridgeMessage]:
        return []  # births go out on the Sparkplug link's own connection

    def messages(self, group: Group) -> list[BridgeMessage]:
        # one commit at a time (the writer thread): its rows, per-device DDATA being gathered, and
        # the devices whose (re)birth is due before their next record of this commit
        self._out: list[BridgeMessage] = []
        self._pending: dict[str, list[pb.M]] = {}
        self._now = group.now_ms
        self._valued = False
        values = [(record, self._metric_of(record)) for record in group.records]
        with self.model.lock:
            self._unborn: set[str] = set()
            for _record, found in values:  # new metrics first: one DBIRTH names them all
                if found is not None:
                    device, name, datatype, _v, _g = found
                    if self.model.slot(device, name, datatype)[1]:
                        self._unborn.add(device)
            added = bool(self._unborn)
            for record, found in values:
                if found is not None:
                    self._value(*found, record.ts_ms)
                elif isinstance(record, Event):
                    self._liveness(record)
            for device in list(self._pending):
                self._flush(device)
            for stats in group.stats:
                self._health(stats)
            if added:  # aliases are kept for good before any row names them
                self.model.save()
            elif self._valued:
                self.model.values_changed()  # the births after a restart carry them
        return self._out

    def _metric_of(self, record: Reading | Event) -> tuple[str, str, str, Any, bool] | None:
        """(device, metric, datatype, value, good) of a record; None for liveness events and for
        values Sparkplug cannot carry (counted)."""
        device = safe_id(record.source_id)
        if isinstance(record, Reading):
            found = sparkplug_metric(record.point, record.value, record.counter)
            if found is None:
                self.bad_input += 1
                return None
            return device, found[0], found[1], record.value, record.quality == "good"
        if record.kind in OFFLINE or record.kind in ONLINE:
            return None
        name = sparkplug_event_metric(record.kind, record.klass == Klass.ALARM)
        return device, name, "String", _event_text(record), True

    def _health(self, stats: Mapping[str, Any]) -> None:
        """One NDATA row of the gateway's health, from a native stats body of this commit."""
        metrics = []
        for name, value in health_values(stats).items():
            slot = self.model.node.metrics[name]
            ok, value = coerce(slot.datatype, value)
            if ok:
                slot.value, slot.ts_ms = value, self._now
                metrics.append(pb.M(slot.alias, value, self._now, DATATYPE[slot.datatype]))
        if metrics:
            self._valued = True
            topic = self.topics.node_topic("NDATA")
            self._out.append(BridgeMessage(topic, pb.encode(self._now, metrics), Klass.TELEMETRY))

    def _row(self, verb: str, device: str, payload: bytes) -> None:
        self._out.append(BridgeMessage(self.topics.device_topic(verb, device), payload, Klass.TELEMETRY))

    def _liveness(self, e: Event) -> None:
        device = safe_id(e.source_id)
        dev = self.model.devices.get(device)
        if dev is None or not dev.metrics:
            return  # never born: nothing to say
        if e.kind in OFFLINE and dev.alive:
            self._flush(device)
            dev.alive = False
            self._row("DDEATH", device, pb.encode(self._now, []))
        elif e.kind in ONLINE and not dev.alive:
            self._birth(device)

    def _value(self, device: str, name: str, datatype: str, value: Any, good: bool, ts_ms: int) -> None:
        slot = self.model.devices[device].metrics[name]
        ok, value = coerce(slot.datatype, value) if good else (True, None)
        if not ok:
            self.bad_input += 1  # a point changed type after its metric was born: not this value
            return
        if device in self._unborn or not self.model.devices[device].alive:
            self._birth(device)  # before this record: the values so far, the new metrics null
        if ts_ms >= slot.ts_ms:
            slot.value, slot.ts_ms = value, ts_ms
            self._valued = True
        self._pending.setdefault(device, []).append(pb.M(slot.alias, value, ts_ms, DATATYPE[slot.datatype]))

    def _birth(self, device: str) -> None:
        self._flush(device)
        self._unborn.discard(device)
        dev = self.model.devices[device]
        dev.alive = True
        dev.retired = False  # a record of it: it is in the configuration again
        self._row("DBIRTH", device, device_birth(list(dev.metrics.values()), self._now))

    def _flush(self, device: str) -> None:
        metrics = self._pending.pop(device, None)
        if metrics:
            self._row("DDATA", device, pb.encode(self._now, metrics))
