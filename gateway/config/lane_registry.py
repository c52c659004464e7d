"""The explicit lane registry: one entry per lane, like the driver registry.

An entry declares everything the rest of the gateway needs to know about a lane:
- `section`: the `GatewayConfig` attribute holding its config; empty (None, []) turns it off. A lane
  that is off is not built at all: no component, no log line, no import of its module (a gateway
  without cameras never imports OpenCV or onnxruntime).
- `build`: "module:function", the lane's builder `(section, deps, **reads) -> Lane`, in the lane's
  own module, imported only when the lane is on; that module also has `REPORT` (the type of its
  report) and `render(report)` for `lintel status`.
- `names` / `references`: the ids its section declares and the ids it names (functions of its
  config module); `gateway.config.references` resolves them all in one generic check.
- `reload`: what a reload does to it. `rebuild`: built again from the new section (from a
  checkpoint of its timers) and tunable remotely; `tune`: applied to the running lane (the doors'
  timings; wiring needs a restart); `restart`: a change needs a restart of the service.

`DOORS` is the one core service among them: the runtime builds it first and hands it to every lane
as `LaneDeps.doors`. `LANES` are the feature lanes, built in this order after the doors.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from gateway.core.references import Named, Ref
from gateway.lanes import Lane, LaneDeps
from gateway.lanes.care import config as care
from gateway.lanes.doors import config as doors
from gateway.lanes.faces import config as faces
from gateway.lanes.fire_lanes import config as fire_lanes
from gateway.lanes.rules import config as rules

Reload = Literal["rebuild", "tune", "restart"]


@dataclass(frozen=True, slots=True)
class LaneSpec:
    name: str
    section: str
    build: str
    names: Callable[[Any], Iterable[Named]] = lambda _section: ()
    references: Callable[[Any], Iterable[Ref]] = lambda _section: ()
    reload: Reload = "restart"
    reads: tuple[str, ...] = ()  # other sections it reads, passed by name (shared inference settings)
    tunable: tuple[str, ...] = ()  # with reload "tune": the keys of each entry applied live

    @property
    def module(self) -> str:
        return self.build.partition(":")[0]

    def section_of(self, config: Any) -> Any:
        """Its typed section in `config` (None or empty when the lane is off)."""
        return getattr(config, self.section)


DOORS = LaneSpec(
    "doors",
    "doors",
    "gateway.lanes.doors.lane:build_doors",
    doors.names,
    doors.references,
    "tune",
    tunable=("pulse_s",),
)
LANES: tuple[LaneSpec, ...] = (
    LaneSpec("care", "care", "gateway.lanes.care.lane:build_lane", care.names, care.references, "rebuild"),
    LaneSpec(
        "rules", "rules", "gateway.lanes.rules.lane:build_lane", rules.names, rules.references, "rebuild"
    ),
    LaneSpec(
        "fire_lanes",
        "fire_lanes",
        "gateway.lanes.fire_lanes.lane:build_lane",
        fire_lanes.names,
        fire_lanes.references,
        reads=("vision", "inference"),
    ),
    LaneSpec(
        "face_access",
        "face_access",
        "gateway.lanes.faces.lane:build_lane",
        faces.names,
        faces.references,
        reads=("faces", "inference"),
    ),
)


def configured(config: Any) -> list[LaneSpec]:
    """The feature lanes this config turns on, in registry order (the doors are built before them)."""
    return [spec for spec in LANES if spec.section_of(config)]


def sections(reload: Reload) -> list[str]:
    """The config sections of the lanes (doors included) with this reload behaviour."""
    found = [
        name for spec in (DOORS, *LANES) if spec.reload == reload for name in (spec.section, *spec.reads)
    ]
    return list(dict.fromkeys(found))


def tuned_changes(old: Any, new: Any) -> list[str]:
    """The sections of `tune` lanes whose change goes beyond their tunable keys (needs a restart)."""
    changed = []
    for spec in (DOORS, *LANES):
        if spec.reload == "tune":
            keep = set(spec.tunable)
            before = [entry.model_dump(exclude=keep) for entry in spec.section_of(old)]
            if before != [entry.model_dump(exclude=keep) for entry in spec.section_of(new)]:
                changed.append(f"{spec.section} (anything but {', '.join(spec.tunable)})")
    return changed


def build(spec: LaneSpec, config: Any, deps: LaneDeps) -> Lane:
    """Build one lane from its section (and the shared sections it reads); raises what its builder
    raises (the runtime makes it `unavailable`)."""
    extra = {name: getattr(config, name) for name in spec.reads}
    module, _, function = spec.build.partition(":")
    lane: Lane = getattr(importlib.import_module(module), function)(spec.section_of(config), deps, **extra)
    return lane


def spec_named(name: str) -> LaneSpec | None:
    return next((s for s in (DOORS, *LANES) if s.name == name), None)


def read_report(name: str, body: Any) -> Any:
    """A lane's report as found in status.json, back in its lane module's type."""
    from pydantic import TypeAdapter

    spec = spec_named(name)
    if spec is None:
        raise KeyError(name)
    return TypeAdapter(importlib.import_module(spec.module).REPORT).validate_python(body)


def render(name: str, body: Any) -> list[str]:
    """`lintel status` lines for a lane's report as found in status.json, rendered by its module."""
    spec = spec_named(name)
    assert spec is not None, name
    lines: list[str] = importlib.import_module(spec.module).render(read_report(name, body))
    return lines
