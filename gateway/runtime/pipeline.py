"""The pipeline: records from sources run through the processors, then into the outbox writer.

`submit` is what a source's `ctx.emit` calls. It never blocks: the writer queues in memory and
refuses (and counts) telemetry only when its bounded queue is full. A processor that raises is a
bug: the record passes through unchanged, the failure is counted and logged once per processor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from gateway.core import Record
from gateway.core.processor import Processor

log = logging.getLogger("lintel.pipeline")


class Pipeline:
    def __init__(
        self,
        sink: Callable[[Record], bool],
        processors: Sequence[Processor] = (),
        observers: Sequence[Callable[[Record], None]] = (),
        sink_many: Callable[[Sequence[Record]], list[bool]] | None = None,
    ) -> None:
        self._sink = sink
        self._sink_many = sink_many
        self.processors = list(processors)
        self.observers = list(observers)
        self.accepted = 0
        self.refused = 0
        self.processor_errors: dict[str, int] = {}

    def submit(self, record: Record) -> bool:
        records: list[Record] = [record]
        for processor in self.processors:
            records = self._through(processor, records)
        ok = True
        for r in records:
            if self._sink(r):
                self.accepted += 1
                for observe in self.observers:
                    observe(r)
            else:
                self.refused += 1
                ok = False
        return ok

    def submit_many(self, batch: Sequence[Record]) -> bool:
        """`submit` for a batch (a poll's readings): the same processors, counts and observers per
        record, and one call into the sink for the lot where it takes batches."""
        records: list[Record] = list(batch)
        for processor in self.processors:
            records = self._through(processor, records)
        sink_many = self._sink_many
        taken = sink_many(records) if sink_many is not None else [self._sink(r) for r in records]
        ok = True
        for r, accepted in zip(records, taken, strict=True):
            if accepted:
                self.accepted += 1
                for observe in self.observers:
                    observe(r)
            else:
                self.refused += 1
                ok = False
        return ok

    def tick(self, now_ms: int) -> None:
        """Run processor timers; their output goes through the later processors too."""
        for index, processor in enumerate(self.processors):
            try:
                produced = list(processor.tick(now_ms))
            except Exception:
                self._failed(processor)
                continue
            for later in self.processors[index + 1 :]:
                produced = self._through(later, produced)
            for r in produced:
                self._sink(r)

    def _through(self, processor: Processor, records: list[Record]) -> list[Record]:
        out: list[Record] = []
        for r in records:
            try:
                out.extend(processor.process(r))
            except Exception:
                self._failed(processor)
                out.append(r)
        return out

    def _failed(self, processor: Processor) -> None:
        count = self.processor_errors.get(processor.name, 0) + 1
        self.processor_errors[processor.name] = count
        if count == 1:
            log.exception("processor %s failed; records pass through unchanged", processor.name)
