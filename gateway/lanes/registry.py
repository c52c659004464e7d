"""The explicit lane registry: one line per lane, like the driver registry.

`DOORS` is the one core service among them: the runtime builds it first (`build_doors`, giving the
typed `Doors`) and hands it to every lane as `LaneDeps.doors`; its entry here names its module for
`lintel status` and the config checks. `LANES` are the feature lanes, built in this order.

A lane whose config section is empty is not built at all: no component, no log line, no import of
its module (a gateway without cameras never imports OpenCV or onnxruntime).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from gateway.lanes import Lane, LaneDeps


@dataclass(frozen=True, slots=True)
class LaneSpec:
    name: str
    section: str  # the GatewayConfig attribute whose presence turns the lane on
    build: str  # "module:function" taking (config, deps) and returning a Lane


DOORS = LaneSpec("doors", "doors", "gateway.lanes.doors.lane:build_doors")
LANES: tuple[LaneSpec, ...] = (
    LaneSpec("care", "care", "gateway.lanes.care.lane:build_lane"),
    LaneSpec("rules", "rules", "gateway.lanes.rules.lane:build_lane"),
    LaneSpec("fire_lanes", "fire_lanes", "gateway.lanes.fire_lanes.lane:build_lane"),
    LaneSpec("face_access", "face_access", "gateway.lanes.faces.lane:build_lane"),
)


def configured(config: Any) -> list[LaneSpec]:
    """The feature lanes this config turns on, in registry order (the doors are built before them)."""
    return [spec for spec in LANES if getattr(config, spec.section)]


def build(spec: LaneSpec, config: Any, deps: LaneDeps) -> Lane:
    """Build one lane; raises what its builder raises (the runtime makes it `unavailable`)."""
    module, _, name = spec.build.partition(":")
    lane: Lane = getattr(importlib.import_module(module), name)(config, deps)
    return lane


def spec_named(name: str) -> LaneSpec | None:
    return next((s for s in (DOORS, *LANES) if s.name == name), None)


def read_report(name: str, body: Any) -> Any:
    """A lane's report as found in status.json, back in its lane module's type."""
    from pydantic import TypeAdapter

    spec = spec_named(name)
    if spec is None:
        raise KeyError(name)
    module = importlib.import_module(spec.build.partition(":")[0])
    return TypeAdapter(module.REPORT).validate_python(body)


def render(name: str, body: Any) -> list[str]:
    """`lintel status` lines for a lane's report as found in status.json, rendered by its module."""
    spec = spec_named(name)
    assert spec is not None, name
    module = importlib.import_module(spec.build.partition(":")[0])
    lines: list[str] = module.render(read_report(name, body))
    return lines
