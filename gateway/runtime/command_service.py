"""Serving commands on the event loop: from the bounded inbox through the router, and who may tune what.

The uplink thread only offers raw payloads to the inbox (gateway.delivery.inbox checks size and work
budget there, unparsed); here they are run through the router, each as its own task (handlers use the
loop's objects), at most COMMANDS_IN_FLIGHT at once: a door_pulse holds its slot for pulse_s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.commands.router import LOCAL, CommandRouter
from gateway.config.commands import ALL_DOORS
from gateway.core.commands import Caller
from gateway.delivery.inbox import CommandInbox

# Commands handled at once (each as a task); more wait in the bounded inbox.
COMMANDS_IN_FLIGHT = 16


async def serve_commands(
    inbox: CommandInbox, router: CommandRouter, group: asyncio.TaskGroup, running: Callable[[], bool]
) -> None:
    """Until cancelled: take inbox messages and handle them; while not `running()` they are dropped."""
    slots = asyncio.Semaphore(COMMANDS_IN_FLIGHT)

    async def run(payload: bytes) -> None:
        try:
            await router.handle(payload)
        finally:
            slots.release()

    while True:
        await slots.acquire()
        payload = await inbox.get()
        if not running():
            slots.release()
            continue
        group.create_task(run(payload), name="command")


def doors_of(router: CommandRouter, caller: Caller) -> frozenset[str] | None:
    """The doors a command's verified key may pulse, hence tune; None for every door."""
    auth = router.auth
    if caller.origin == LOCAL or auth is None:
        return None
    op = auth.operators.get(caller.by)
    if op is None:
        return frozenset()
    return None if ALL_DOORS in op.doors else op.doors
