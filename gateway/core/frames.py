"""Frames: how a camera driver lends its latest picture to the analytics without knowing them.

Frames never become records. A camera source keeps only its latest frame; the analytics (fire
lane, face access) pull it at their own pace through the `FrameHub`, which the runtime fills with
every running source that is a `FrameSource`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gateway.core.hub import Hub


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture (a BGR `numpy` array, never copied) and when it was captured."""

    image: Any
    ts_ms: int  # wall clock, for events
    seq: int  # increases by one per decoded frame of this camera


@runtime_checkable
class FrameSource(Protocol):
    def latest_frame(self) -> Frame | None:
        """The newest frame, or None before the first one."""
        ...

    @property
    def online(self) -> bool:
        """True while frames arrive; False while the camera is offline or stalled."""
        ...


class FrameHub(Hub[FrameSource]):
    """Running cameras by id. Owned by the runtime; read by analytics on the event loop."""

    def latest(self, camera_id: str) -> Frame | None:
        source = self.get(camera_id)
        return source.latest_frame() if source is not None else None

    def online(self, camera_id: str) -> bool:
        source = self.get(camera_id)
        return source is not None and source.online
