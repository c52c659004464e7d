"""The daemon's periodic steps (status file, stats, processor timers): one small loop for all of them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def every(interval_s: float, step: Callable[[], None], *, first_after: bool = False) -> None:
    """Run `step` every `interval_s` until cancelled: at once, or after one interval."""
    if first_after:
        await asyncio.sleep(interval_s)
    while True:
        step()
        await asyncio.sleep(interval_s)
