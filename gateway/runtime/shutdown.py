"""A graceful stop as an explicit list of timed stages.

The daemon lists its stages in order (lanes -> sources -> commit what they produced -> finish the
links' in-flight messages -> close); `run_stages` runs them one after another within one total
budget (`runtime.shutdown_timeout_s`), tells systemd which stage is running, and logs how long each
took. A stage's time limit is a share of the whole budget (`of_total`) or of what is left when it
starts; every stage gets at least 0.1 s, so a late stage still runs (the outbox still closes
cleanly) when an earlier one used up its share.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.core import Clock
from gateway.runtime.sdnotify import Notifier

if TYPE_CHECKING:
    from gateway.runtime.assembly import Core
    from gateway.runtime.control import ControlServer
    from gateway.runtime.lanes import Lanes
    from gateway.runtime.sources import Sources

log = logging.getLogger("lintel.daemon")

MIN_STAGE_S = 0.1


@dataclass(frozen=True, slots=True)
class Stage:
    name: str  # systemd's status meanwhile: "stopping: <name>"
    done: str  # the log line after it: "shutdown: <done> in <s> s"
    run: Callable[[float], Awaitable[object]]  # given its time limit in seconds
    share: float  # of the budget left when it starts (or of the whole budget, with of_total)
    of_total: bool = False


async def run_stages(
    stages: Sequence[Stage], budget_s: float, clock: Clock, notifier: Notifier, *, restarting: bool = False
) -> None:
    """Run `stages` in order within `budget_s`; the first tells systemd that the service is stopping,
    or, `restarting` (the same process starts again: a deployment), that it is reloading."""
    deadline = clock.monotonic() + budget_s
    for index, stage in enumerate(stages):
        started = clock.monotonic()
        base = budget_s if stage.of_total else deadline - started
        limit = max(MIN_STAGE_S, base * stage.share)
        if index == 0 and restarting:
            notifier.send(RELOADING=1, STATUS=f"restarting: {stage.name}")
        else:
            say = notifier.stopping if index == 0 else notifier.status
            say(f"stopping: {stage.name}")
        await stage.run(limit)
        log.info("shutdown: %s in %.2f s", stage.done, clock.monotonic() - started)


def daemon_stages(
    core: Core, lanes: Lanes, sources: Sources, control: ControlServer, loops: list[asyncio.Task[None]]
) -> list[Stage]:
    """The daemon's stop: lanes -> sources -> commit what they produced -> the links finish in-flight
    messages and say offline -> close the files.

    The lanes stage has 30 % of the whole budget for the lanes' components, stopped one after
    another; beside them the doors switch their relays off for their own whole budget
    (DOOR_STOP_BUDGET_S, 3 s), never a share: the stage lasts the longer of the two. Sources get
    20 % of the whole; the later stages share what is left. With doors the config guarantees at
    least twice the doors' budget in all (`GatewayConfig._doors_stop_fits`), so the total holds."""

    async def stop_sources(limit: float) -> None:
        await sources.stop(list(sources.tasks), limit)
        await control.close()

    async def commit(limit: float) -> None:
        flushed = await asyncio.to_thread(core.writer.flush, limit)
        log.info("shutdown: outbox %s", "committed" if flushed else "NOT committed")

    async def links(limit: float) -> None:  # both links finish in parallel, each says its death
        running = [link for link in (core.uplink, core.sparkplug) if link is not None]
        await asyncio.gather(*(asyncio.to_thread(link.stop, limit) for link in running))

    async def close(limit: float) -> None:
        for task in loops:
            task.cancel()
        await asyncio.to_thread(core.writer.stop, limit)
        core.close()

    stages = [
        Stage("lanes", "lanes stopped", lanes.stop, 0.3, of_total=True),
        Stage("sources", "sources stopped", stop_sources, 0.2, of_total=True),
        Stage("committing queued records", "queued records handed to the outbox", commit, 0.4),
    ]
    if core.uplink is not None:
        stages.append(Stage("finishing in-flight messages", "links closed", links, 0.8))
    return [*stages, Stage("closing", "outbox and state closed", close, 1.0)]
