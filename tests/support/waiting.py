"""Waiting on a condition, never a fixed sleep: the tests hold on a busy machine."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    predicate: Callable[[], Any], timeout_s: float = 60, what: str = "condition", poll_s: float = 0.02
) -> Any:
    """The predicate's first truthy value, polled every `poll_s`; AssertionError naming `what`
    after `timeout_s` (the predicate is asked once more at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)
