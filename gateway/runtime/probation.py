"""What a deployment's probation looks at, and how it judges (`gateway.runtime.deploy` acts on it).

A `Watch` is a handful of small functions over the running daemon's parts (built by `Watch.of`), so
the judgement can be tested with fakes of these, our own interface. During the probation a changed
source or the doors lane that *fails* ends it at once (`failed`); at its end (`judge`) the broker
must have been reached with the current settings, every changed source be running with each of its
devices online, and every changed door's relay be confirmed released. Each answer is the reason
given upstream in `config_rolled_back`, or None.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.loader import LoadedConfig


@dataclass(frozen=True, slots=True)
class Watch:
    """What a probation looks at, each a small function of the running daemon."""

    broker_reached: Callable[[], bool]  # a session with the current settings came up
    component_states: Callable[[], Mapping[str, str]]  # health name -> running/retrying/failed/…
    door_states: Callable[[], Mapping[str, str]]  # door id -> released/energised/unknown/…
    devices: Callable[[], list[tuple[str, str, bool | None, str | None]]]  # source, device, online, error

    @classmethod
    def of(cls, uplink: Any, health: Mapping[str, Any], doors: Any, sources: Any) -> Watch:
        """The watch over a daemon's parts: its uplink (None without a broker), its health table,
        its doors lane component (None without doors) and its `Sources`."""
        return cls(
            broker_reached=lambda: uplink is not None and uplink.connects > 0,
            component_states=lambda: {name: h.state for name, h in health.items()},
            door_states=lambda: {d.id: d.relay for d in doors.report().doors} if doors is not None else {},
            devices=lambda: [
                (d.source_id, d.device_id, d.online, d.last_error) for d in sources.device_reports()
            ],
        )


def changed_parts(old: LoadedConfig | None, new: LoadedConfig) -> tuple[list[str], list[str]]:
    """(health names of the sources, ids of the doors) that `new` adds or changes over `old`."""
    before = {s.id: s for s in old.config.sources} if old is not None else {}
    sources = [f"source:{s.id}" for s in new.config.sources if s.enabled and before.get(s.id) != s]
    doors_before = {d.id: d for d in old.config.doors} if old is not None else {}
    doors = [d.id for d in new.config.doors if doors_before.get(d.id) != d]
    return sources, doors


def file_sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def failed(watch: Watch, sources: list[str], doors: list[str]) -> str | None:
    """A changed source (or, when doors changed, the doors lane) that failed, as a reason."""
    states = watch.component_states()
    watched = [*sources, *(["lane:doors"] if doors else [])]
    down = [name for name in watched if states.get(name) == "failed"]
    return f"{', '.join(down)} failed" if down else None


def judge(
    watch: Watch, needs_broker: bool, sources: list[str], doors: list[str], probation_s: float
) -> str | None:
    """Why the deployment fails at the end of its probation, or None when it holds."""
    if needs_broker and not watch.broker_reached():
        return f"the broker was not reached with the new settings within {probation_s:g} s"
    states = watch.component_states()
    down = [f"{name} {states.get(name, 'missing')}" for name in sources if states.get(name) != "running"]
    if down:
        return f"not running after {probation_s:g} s: {', '.join(down)}"
    changed = {name.removeprefix("source:") for name in sources}
    offline = [
        f"{device if device == sid else f'{sid}/{device}'} {'offline' if online is False else 'not heard'}"
        + (f" ({error})" if error else "")
        for sid, device, online, error in watch.devices()
        if sid in changed and online is not True
    ]
    if offline:
        return f"not online after {probation_s:g} s: {', '.join(offline)}"
    door_states = watch.door_states()
    stuck = [f"door {d} {door_states.get(d, 'missing')}" for d in doors if door_states.get(d) != "released"]
    if stuck:
        return f"relay not confirmed off after {probation_s:g} s: {', '.join(stuck)}"
    return None
