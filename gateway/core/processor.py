"""The Processor extension point: pure, fast steps between sources and the outbox.

`process(record)` returns the records to pass on (the record itself, others, or none);
`tick(now_ms)` returns records a timer produced (a car parked too long, no activity for 12 h).
Processors must not block: they run on the event loop for every record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from gateway.core.records import Record


@runtime_checkable
class Processor(Protocol):
    name: str

    def process(self, record: Record) -> Iterable[Record]: ...

    def tick(self, now_ms: int) -> Iterable[Record]: ...
