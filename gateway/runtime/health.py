"""Health of the running parts, and the systemd watchdog that depends on it.

Sources and lane components report through their `ComponentHealth` (the supervisor keeps it); the
worker threads (outbox writer, and each MQTT link: the native `uplink`, the `sparkplug` link when
that bridge is on) are read here. The watchdog is petted only while every
part is alive and shows progress: a hung thread or a stalled source gets the service restarted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.core import Clock
from gateway.delivery.link_thread import LOOP_TURN_S
from gateway.releases.probation import Vitals
from gateway.runtime.sdnotify import Notifier
from gateway.runtime.supervisor import ComponentHealth

log = logging.getLogger("lintel.daemon")


class Health:
    def __init__(self, clock: Clock, stall_after_s: float, links: Iterable[str]) -> None:
        self.clock = clock
        self.parts: dict[str, ComponentHealth] = {
            "outbox": ComponentHealth("outbox", stall_after_s=stall_after_s, clock=clock)
        }
        for name in links:  # a link's loop turns at least every LOOP_TURN_S: not a stall
            self.parts[name] = ComponentHealth(name, stall_after_s=stall_after_s + LOOP_TURN_S, clock=clock)

    def refresh_threads(self, writer: Any, links: Mapping[str, Any], stopped: bool) -> None:
        """Read the worker threads' liveness into their health entries. A link is any object with
        `alive`, `last_error` and `progress_mono` (the last turn of its loop; waiting on purpose,
        as in a reconnect backoff, counts as a turn)."""
        out = self.parts["outbox"]
        out.state = "running" if writer.alive else ("stopped" if stopped else "failed")
        out.last_error = writer.last_error
        # The writer makes progress if it commits (or holds records on a full disk), or if it has
        # nothing to commit.
        if writer.pending_count() == 0 or writer.progressed_recently(out.stall_after_s or 60):
            out.progress()
        for name, link in links.items():
            part = self.parts[name]
            part.state = "running" if link.alive else ("stopped" if stopped else "failed")
            part.last_error = link.last_error
            part.last_progress = link.progress_mono

    def vitals(self, running: bool, broker: str) -> Vitals:
        """What a release on probation is judged by (gateway.releases.probation)."""
        now = self.clock.monotonic()
        parts = self.parts.values()
        return Vitals(
            running=running,
            broker=broker,
            stalled=tuple(h.name for h in parts if h.state != "failed" and h.stalled(now)),
            failed=tuple(h.name for h in parts if h.state == "failed"),
        )

    def unhealthy(self) -> list[str]:
        now = self.clock.monotonic()
        return [h.name for h in self.parts.values() if h.state == "failed" or h.stalled(now)]

    async def watchdog(self, notifier: Notifier, refresh: Any) -> None:
        """Pet systemd's watchdog at half its interval while every part is healthy."""
        usec = notifier.watchdog_usec
        if not usec:
            return
        logged = False
        while True:
            refresh()
            bad = self.unhealthy()
            if not bad:
                notifier.watchdog()
                logged = False
            elif not logged:
                log.error("not petting the systemd watchdog: no progress from %s", ", ".join(bad))
                logged = True
            await asyncio.sleep(usec / 1_000_000 / 2)
