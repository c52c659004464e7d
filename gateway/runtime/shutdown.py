"""A graceful stop as an explicit list of timed stages.

The daemon lists its stages in order (lanes -> sources -> commit what they produced -> finish the
links' in-flight messages -> close); `run_stages` runs them one after another within one total
budget (`runtime.shutdown_timeout_s`), tells systemd which stage is running, and logs how long each
took. A stage's time limit is a share of the whole budget (`of_total`) or of what is left when it
starts; every stage gets at least 0.1 s, so a late stage still runs (the outbox still closes
cleanly) when an earlier one used up its share.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gateway.core import Clock
from gateway.runtime.sdnotify import Notifier

log = logging.getLogger("lintel.daemon")

MIN_STAGE_S = 0.1


@dataclass(frozen=True, slots=True)
class Stage:
    name: str  # systemd's status meanwhile: "stopping: <name>"
    done: str  # the log line after it: "shutdown: <done> in <s> s"
    run: Callable[[float], Awaitable[object]]  # given its time limit in seconds
    share: float  # of the budget left when it starts (or of the whole budget, with of_total)
    of_total: bool = False


async def run_stages(stages: Sequence[Stage], budget_s: float, clock: Clock, notifier: Notifier) -> None:
    """Run `stages` in order within `budget_s`; the first tells systemd that the service is stopping."""
    deadline = clock.monotonic() + budget_s
    for index, stage in enumerate(stages):
        started = clock.monotonic()
        base = budget_s if stage.of_total else deadline - started
        limit = max(MIN_STAGE_S, base * stage.share)
        say = notifier.stopping if index == 0 else notifier.status
        say(f"stopping: {stage.name}")
        await stage.run(limit)
        log.info("shutdown: %s in %.2f s", stage.done, clock.monotonic() - started)
