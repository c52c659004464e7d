"""What the Sparkplug bridge knows of its edge node: devices, their metrics and aliases, bdSeq.

Shared by two threads: the outbox writer (the bridge adds metrics and current values as records are
accepted) and the Sparkplug link (it snapshots the births and counts bdSeq per connection); every
access holds `lock`. Aliases are unique across the node (the spec), assigned in the order metrics
are first born, and kept with their datatypes and bdSeq in `<state_dir>/bridges/sparkplug.json`, so
they stay stable across restarts (rows already in the outbox use them).

The last known value of every metric (with its timestamp) is kept in the same file, so births
after a restart carry values, not nulls: saved when a metric is added, at most every
`VALUES_SAVE_S` while values change (the writer thread: one small file, not a write per reading),
and at a clean stop. After a crash a birth may carry a value up to `VALUES_SAVE_S` old, with its
own timestamp; the newer ones follow from the outbox.

A device of the file that is not in the configuration any more (`configured`) is *retired*: it is
not born, and gets one DDEATH at the first birth of the process (a host may still hold it as
alive from an earlier session). Its aliases stay reserved, so they are never reused; if it produces
a record again (it came back to the configuration), it is born again as any dead device.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.core.clock import SystemClock
from gateway.core.files import replace_durably

log = logging.getLogger("lintel.bridges.sparkplug")

BD_SEQ_ALIAS = 0
REBIRTH_ALIAS = 1
FIRST_DEVICE_ALIAS = 2
DATATYPES = ("Int64", "UInt64", "Double", "Boolean", "String")
VALUES_SAVE_S = 30.0
# The gateway's health as node metrics (NBIRTH, then NDATA with every native stats message).
NODE_METRICS = (
    ("Health/uptime_s", "Double"),
    ("Health/outbox_backlog", "UInt64"),
    ("Health/records_dropped", "UInt64"),
    ("Health/open_alarms", "UInt64"),
    ("Health/uplink", "String"),
)
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "Int64": (int,),
    "UInt64": (int,),
    "Double": (int, float),
    "Boolean": (bool,),
    "String": (str,),
}


@dataclass(slots=True)
class Slot:
    """One device metric: its alias and datatype (fixed), its current value and time."""

    name: str
    alias: int
    datatype: str
    value: Any = None
    ts_ms: int = 0


@dataclass(slots=True)
class Device:
    metrics: dict[str, Slot] = field(default_factory=dict)  # insertion order: DBIRTH order
    alive: bool = True
    retired: bool = False  # in the file, not in the configuration: never born while so


class NodeModel:
    def __init__(self, state_file: Path, configured: set[str] | None = None, monotonic: Any = None) -> None:
        """`configured`: the device names (safe ids) the configuration can produce records for;
        None keeps every device of the file. `monotonic`: the clock of the values' save interval."""
        self.state_file = state_file
        self.lock = threading.Lock()
        self.devices: dict[str, Device] = {}
        self.next_alias = FIRST_DEVICE_ALIAS
        self.bd_seq = -1  # the last one used; the first connection takes 0
        self._monotonic = monotonic or SystemClock().monotonic
        self._values_changed = False
        self._saved_at = self._monotonic()
        self._retired_announced = False
        self.node = Device()  # the node's own metrics (NDATA): the gateway's health
        # the primary host's newest accepted STATE (timestamp, online), kept across restarts: a
        # forged future-dated retained STATE, ignored, must not leave a restarted node waiting
        self.host_state: tuple[int, bool] = (-1, False)
        self._load()
        for name, datatype in NODE_METRICS:
            if name not in self.node.metrics:
                self.node.metrics[name] = Slot(name, self.next_alias, datatype)
                self.next_alias += 1
        if configured is not None:
            for name, dev in self.devices.items():
                if name not in configured:
                    dev.retired, dev.alive = True, False

    # -- the writer's side (hold `lock`) -----------------------------------------------------
    def slot(self, device: str, name: str, datatype: str) -> tuple[Slot, bool]:
        """The device's metric `name`, created (next alias) if new: (slot, created)."""
        dev = self.devices.setdefault(device, Device())
        found = dev.metrics.get(name)
        if found is not None:
            return found, False
        made = Slot(name, self.next_alias, datatype)
        self.next_alias += 1
        dev.metrics[name] = made
        return made, True

    def revive(self, device: str) -> None:
        """A retired device produced a record: it is in the configuration again."""
        dev = self.devices.get(device)
        if dev is not None:
            dev.retired = False

    def values_changed(self) -> None:
        """Values were set (in this commit): saved once the interval has passed."""
        self._values_changed = True
        if self._monotonic() - self._saved_at >= VALUES_SAVE_S:
            self.save()

    # -- the link's side -------------------------------------------------------------------
    def next_bd_seq(self) -> int:
        """bdSeq for a new connection (0-255, then 0 again), saved before it is used in a will."""
        with self.lock:
            self.bd_seq = (self.bd_seq + 1) % 256
            self.save()
            return self.bd_seq

    def unused_bd_seq(self, bd_seq: int) -> None:
        """The connection never sent its CONNECT (no route, refused): the next one reuses it."""
        with self.lock:
            if self.bd_seq == bd_seq:
                self.bd_seq = (bd_seq - 1) % 256
                self.save()

    def snapshot(self) -> list[tuple[str, bool, list[Slot]]]:
        """(device, alive, metrics) of every device to announce at a birth, copies taken under the
        lock: each device with a metric; a retired device (no metrics: not born, only its DDEATH)
        at the first birth of the process only."""
        with self.lock:
            out: list[tuple[str, bool, list[Slot]]] = []
            for name, dev in self.devices.items():
                if dev.retired:
                    if not self._retired_announced:
                        out.append((name, False, []))
                elif dev.metrics:
                    out.append((name, dev.alive, [dataclasses.replace(s) for s in dev.metrics.values()]))
            self._retired_announced = True
            return out

    def retired(self) -> frozenset[str]:
        """The devices that left the configuration (not born in this process)."""
        with self.lock:
            return frozenset(name for name, dev in self.devices.items() if dev.retired)

    def host_said(self, ts: int, online: bool) -> None:
        """The primary host's STATE (accepted): remembered, saved at once (STATE changes are rare)."""
        with self.lock:
            if self.host_state != (ts, online):
                self.host_state = (ts, online)
                self.save()

    def node_snapshot(self) -> list[Slot]:
        """Copies of the node's own metrics (for the NBIRTH)."""
        with self.lock:
            return [dataclasses.replace(s) for s in self.node.metrics.values()]

    def save_now(self) -> None:
        """Save everything (a clean stop): the values as they are now."""
        with self.lock:
            self.save()

    # -- persistence (hold `lock`) ----------------------------------------------------------
    def save(self) -> None:
        body = {
            "bd_seq": self.bd_seq,
            "next_alias": self.next_alias,
            "devices": {
                name: [[s.name, s.alias, s.datatype, s.value, s.ts_ms] for s in dev.metrics.values()]
                for name, dev in self.devices.items()
            },
            "node": [[s.name, s.alias, s.datatype, s.value, s.ts_ms] for s in self.node.metrics.values()],
            "host_state": list(self.host_state),
        }
        self._saved_at = self._monotonic()
        self._values_changed = False
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            replace_durably(self.state_file, json.dumps(body, separators=(",", ":")).encode())
        except OSError as exc:  # aliases stay right in memory; only a restart would renumber
            log.warning("sparkplug bridge: cannot save %s: %s", self.state_file, exc)

    def _load(self) -> None:
        try:
            saved = json.loads(self.state_file.read_text())
            bd_seq = int(saved["bd_seq"])
            devices = saved["devices"]
            for name, metrics in devices.items():
                dev = self.devices.setdefault(str(name), Device())
                for entry in metrics:
                    metric, alias, datatype = entry[:3]
                    if datatype not in DATATYPES or not isinstance(alias, int) or alias < FIRST_DEVICE_ALIAS:
                        raise ValueError(f"bad metric {metric!r}")
                    slot = dev.metrics[str(metric)] = Slot(str(metric), alias, datatype)
                    if len(entry) == 5:  # files before issue 28 hold no values
                        slot.value, slot.ts_ms = _loaded_value(datatype, entry[3], entry[4])
            for metric, alias, datatype, value, ts_ms in saved.get("node", []):
                if (
                    (metric, datatype) not in NODE_METRICS
                    or not isinstance(alias, int)
                    or alias < FIRST_DEVICE_ALIAS
                ):
                    raise ValueError(f"bad node metric {metric!r}")
                slot = self.node.metrics[metric] = Slot(metric, alias, datatype)
                slot.value, slot.ts_ms = _loaded_value(datatype, value, ts_ms)
            used = [s.alias for d in [*self.devices.values(), self.node] for s in d.metrics.values()]
            if len(used) != len(set(used)):
                raise ValueError("an alias is used twice")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("sparkplug bridge: %s unreadable (%s); aliases start afresh", self.state_file, exc)
            self.devices.clear()
            self.node.metrics.clear()
            return
        self.bd_seq = bd_seq % 256
        host = saved.get("host_state")
        if (
            isinstance(host, list)
            and len(host) == 2
            and isinstance(host[0], int)
            and isinstance(host[1], bool)
        ):
            # whether it was online, not its time: a host whose clock went back while we were down
            # must not be judged older than itself for good
            self.host_state = (-1, host[1])
        self.next_alias = max([FIRST_DEVICE_ALIAS, *(a + 1 for a in used)])


def _loaded_value(datatype: str, value: Any, ts_ms: Any) -> tuple[Any, int]:
    """A saved (value, timestamp) if it is one of `datatype`; (None, 0) (born null) if not."""
    if value is None or not isinstance(ts_ms, int) or isinstance(ts_ms, bool) or ts_ms < 0:
        return None, 0
    if datatype != "Boolean" and isinstance(value, bool):
        return None, 0
    if not isinstance(value, _PYTHON_TYPES[datatype]):
        return None, 0
    if datatype == "UInt64" and isinstance(value, int) and value < 0:
        return None, 0
    return (float(value) if isinstance(value, int | float) and datatype == "Double" else value), ts_ms
