"""What the Sparkplug bridge knows of its edge node: devices, their metrics and aliases, bdSeq.

Shared by two threads: the outbox writer (the bridge adds metrics and current values as records are
accepted) and the Sparkplug link (it snapshots the births and counts bdSeq per connection); every
access holds `lock`. Aliases are unique across the node (the spec), assigned in the order metrics
are first born, and kept with their datatypes and bdSeq in `<state_dir>/bridges/sparkplug.json`, so
they stay stable across restarts (rows already in the outbox use them). Values are not kept: after a
restart a metric is born `is_null` until its next reading.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.core.files import replace_durably

log = logging.getLogger("lintel.bridges.sparkplug")

BD_SEQ_ALIAS = 0
REBIRTH_ALIAS = 1
FIRST_DEVICE_ALIAS = 2
DATATYPES = ("Int64", "UInt64", "Double", "Boolean", "String")


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


class NodeModel:
    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self.lock = threading.Lock()
        self.devices: dict[str, Device] = {}
        self.next_alias = FIRST_DEVICE_ALIAS
        self.bd_seq = -1  # the last one used; the first connection takes 0
        self._load()

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
        """(device, alive, metrics) of every device with a metric, copies taken under the lock."""
        with self.lock:
            return [
                (name, dev.alive, [dataclasses.replace(s) for s in dev.metrics.values()])
                for name, dev in self.devices.items()
                if dev.metrics
            ]

    # -- persistence (hold `lock`) ----------------------------------------------------------
    def save(self) -> None:
        body = {
            "bd_seq": self.bd_seq,
            "next_alias": self.next_alias,
            "devices": {
                name: [[s.name, s.alias, s.datatype] for s in dev.metrics.values()]
                for name, dev in self.devices.items()
            },
        }
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
                for metric, alias, datatype in metrics:
                    if datatype not in DATATYPES or not isinstance(alias, int) or alias < FIRST_DEVICE_ALIAS:
                        raise ValueError(f"bad metric {metric!r}")
                    dev.metrics[str(metric)] = Slot(str(metric), alias, datatype)
            used = [s.alias for d in self.devices.values() for s in d.metrics.values()]
            if len(used) != len(set(used)):
                raise ValueError("an alias is used twice")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("sparkplug bridge: %s unreadable (%s); aliases start afresh", self.state_file, exc)
            self.devices.clear()
            return
        self.bd_seq = bd_seq % 256
        self.next_alias = max([FIRST_DEVICE_ALIAS, *(a + 1 for a in used)])
