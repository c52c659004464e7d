"""Supervised components: restart with backoff and a budget; log on state change only.

A component is an async callable run inside the daemon's TaskGroup. `SourceUnavailable` means a
device fault: back off (full jitter) and retry, forever, logging once when it starts and once when
the device is back. Any other exception is a bug: logged with its traceback and restarted, but only
`budget` times per `window_s`; past that the component is marked `failed` and left stopped, so one
broken driver cannot take the gateway (or the CPU) down with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.core import Backoff, Clock, SourceUnavailable, SystemClock

log = logging.getLogger("lintel.supervisor")


@dataclass
class ComponentHealth:
    """What `lintel status` shows for one component."""

    name: str
    state: str = "starting"  # starting, running, retrying, failed, stopped
    last_error: str | None = None
    restarts: int = 0
    stall_after_s: float | None = None  # None: the component is not watched for progress
    recovering: bool = False  # set on restart after a failure; the first progress clears it
    clock: Clock = field(default_factory=SystemClock, repr=False, compare=False)
    last_progress: float = -1.0  # clock.monotonic() of the last progress (set at creation)

    def __post_init__(self) -> None:
        if self.last_progress < 0:
            self.last_progress = self.clock.monotonic()

    def progress(self) -> None:
        self.last_progress = self.clock.monotonic()
        if self.recovering:
            self.recovering = False
            self.last_error = None
            log.info("%s is back", self.name)

    def stalled(self, now: float) -> bool:
        if self.state != "running" or self.stall_after_s is None:
            return False
        return now - self.last_progress > self.stall_after_s

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": "stalled" if self.stalled(now) else self.state,
            "last_error": self.last_error,
            "restarts": self.restarts,
            "progress_age_s": round(now - self.last_progress, 1),
        }


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    budget: int = 10
    window_s: float = 600.0
    initial_s: float = 1.0
    max_s: float = 60.0


async def supervise(
    health: ComponentHealth,
    run: Callable[[], Awaitable[None]],
    policy: RestartPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run `run()` until it returns or is cancelled, restarting it as described above."""
    backoff = Backoff(policy.initial_s, policy.max_s)
    crashes: deque[float] = deque()
    while True:
        health.recovering = health.state == "retrying"
        health.state = "running"
        health.last_progress = health.clock.monotonic()
        started = health.clock.monotonic()
        try:
            await run()
            health.state = "stopped"
            return
        except asyncio.CancelledError:
            health.state = "stopped"
            raise
        except SourceUnavailable as exc:
            message = str(exc) or type(exc).__name__
            if not health.recovering or health.last_error != message:
                log.warning("%s unavailable: %s (retrying with backoff)", health.name, message)
            health.state, health.last_error = "retrying", message
        except Exception as exc:
            now = health.clock.monotonic()
            crashes.append(now)
            while crashes and now - crashes[0] > policy.window_s:
                crashes.popleft()
            health.last_error = f"{type(exc).__name__}: {exc}"
            if len(crashes) > policy.budget:
                health.state = "failed"
                log.error(
                    "%s failed %d times in %.0f s: giving up until restart (last: %s)",
                    health.name,
                    len(crashes),
                    policy.window_s,
                    health.last_error,
                    exc_info=exc,
                )
                return
            health.state = "retrying"
            log.error("%s crashed (%s); restarting", health.name, health.last_error, exc_info=exc)
        if health.clock.monotonic() - started > policy.max_s:
            backoff.reset()  # it ran fine for a good while before failing
        health.restarts += 1
        await sleep(backoff.next_delay())
