"""The component lifecycle every long-running part of the gateway follows.

The runtime drives each component the same way, and nothing else starts or stops one:

- `start()` prepares it (open files, bring actuators to their safe state). An exception here makes
  the component *unavailable*: it reports why once, and the rest of the gateway runs without it.
- `run()` is its long-running work, supervised: a crash restarts it with backoff within a budget,
  then parks it (`failed`); it never takes a sibling down. A component with nothing to run returns.
- `stop()` brings it to its safe state and releases what it holds. It is awaited, in stages, before
  the resources it uses stop (doors before the buses their relays sit on). Idempotent.
- `report()` returns a frozen dataclass: what `status.json`, `lintel status` and the upstream
  `stats` message say about it. Never a dict read by key.
"""

from __future__ import annotations

from dataclasses import Field
from typing import Any, ClassVar, Protocol, runtime_checkable


class Report(Protocol):
    """What a part reports: a dataclass instance (frozen by convention), turned into JSON by
    `gateway.runtime.report.to_json` and read back into its type by the part's module."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]


@runtime_checkable
class Component(Protocol):
    name: str

    async def start(self) -> None: ...

    async def run(self) -> None: ...

    async def stop(self) -> None: ...

    def report(self) -> Report: ...
