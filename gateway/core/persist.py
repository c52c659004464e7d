"""A tiny persistence seam for drivers: small JSON values by (namespace, key).

Drivers may import only `gateway.core`, so they cannot reach the daemon's `state.db` directly; the
runtime hands them a `KeyValueStore` through `SourceContext.store` instead. The daemon passes its
`gateway.storage.state.StateStore` (durable); tests, benchmarks and tools that give none get a
`MemoryStore` (forgotten at exit).

Contract: values are small JSON-able objects (dicts, lists, numbers, strings, booleans, None), read
back equal to what was written. Calls run on the event loop and must be few and small: callers
rate-limit their writes. `put` may raise (a full disk, a read-only store); callers that must not
die count and log the failure.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class KeyValueStore(Protocol):
    def get(self, ns: str, key: str) -> Any:
        """The value stored under (ns, key), or None when there is none (or it is unreadable)."""
        ...

    def put(self, ns: str, key: str, value: Any) -> None:
        """Store `value` (JSON-able) under (ns, key), replacing what was there."""
        ...


class MemoryStore:
    """A `KeyValueStore` in a dict. Values are copied through JSON, as a durable store would."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], str] = {}
        self.writes = 0

    def get(self, ns: str, key: str) -> Any:
        raw = self._rows.get((ns, key))
        return None if raw is None else json.loads(raw)

    def put(self, ns: str, key: str, value: Any) -> None:
        self._rows[(ns, key)] = json.dumps(value)
        self.writes += 1
