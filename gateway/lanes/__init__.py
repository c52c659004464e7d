"""Lanes: the optional parts of a gateway (doors, care, rules, fire lanes, face access).

A lane is built from its own typed config section by a `build_lane(section, deps)` function named
in `gateway.config.lane_registry`, and returns a `Lane`: the components the runtime drives, the pipeline
steps it contributes, and the command handlers it serves. A lane gets only `LaneDeps`, never the
daemon, and never imports another lane: what lanes share (the inference engine, the doors) comes
through `LaneDeps`. The doors are a core service: the runtime builds them before any lane and hands
them to the lanes as a value (`LaneDeps.doors`), so a lane that opens doors never looks them up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gateway.core import Clock, Record
from gateway.core.actuators import ActuatorHub
from gateway.core.commands import Handler
from gateway.core.component import Component
from gateway.core.frames import FrameHub
from gateway.core.processor import Processor
from gateway.core.tags import TagHub
from gateway.lanes.alarms import AlarmBook
from gateway.storage.state import StateStore

if TYPE_CHECKING:  # onnxruntime and its thread only when a camera lane asks for the engine
    from gateway.inference.engine import InferenceEngine


class DoorError(Exception):
    """A door pulse did not happen, or did not end cleanly (the message says which)."""


class DoorOpener(Protocol):
    """What a lane that opens doors (face access) may do with them."""

    def __contains__(self, door_id: str) -> bool: ...

    def busy(self, door_id: str) -> bool: ...

    async def pulse(self, door_id: str, pulse_s: float | None = None, **attrs: Any) -> dict[str, Any]:
        """Open the door; raises DoorError when it did not happen or did not end cleanly."""
        ...


@dataclass(slots=True)
class LaneDeps:
    """Everything a lane may use. `engine()` gives the one shared inference engine (created on
    first use: a gateway without cameras never imports onnxruntime); `doors` the gateway's doors
    (None when no door is configured, or the doors could not be built); `secret(file, name)` a
    password given as a `*_file` key (read now, resolved like the config) or as a `*_secret` name
    (a deployed secret, docs/deployments.md); None when neither is set. `timezone` is the
    building's IANA zone (`[gateway] timezone`; None: the system's) for every lane's local hours;
    `tags` the hub where the BLE sources report the tags a lane watches (face+tag)."""

    clock: Clock
    emit: Callable[[Record], bool]
    book: AlarmBook
    store: StateStore
    frames: FrameHub
    actuators: ActuatorHub
    state_dir: Path
    engine: Callable[[], InferenceEngine]
    secret: Callable[[str | None, str | None], str | None]
    doors: DoorOpener | None = None
    timezone: str | None = None
    tags: TagHub = field(default_factory=TagHub)  # residents' BLE tags, as the BLE sources hear them


class PipelineStepComponent:
    """The component of a lane whose work is a pipeline step (care, rules): the pipeline drives
    it with records and ticks, so it has nothing to start and `run()` only keeps it listed as
    running. Subclasses set `name`, implement `report()` and, if they keep state, `stop()`."""

    name = "pipeline-step"

    async def start(self) -> None:
        pass

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        pass


@dataclass(slots=True)
class Lane:
    name: str
    components: list[Component] = field(default_factory=list)
    processors: list[Processor] = field(default_factory=list)
    handlers: dict[str, Handler] = field(default_factory=dict)
    # records that say the lane is not running (why), emitted when a component fails to start
    unavailable: Callable[[str], list[Record]] = lambda _reason: []
    # saves what a successor built by a reload starts from (timers); changes nothing the lane does
    checkpoint: Callable[[], None] = lambda: None
