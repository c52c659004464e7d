"""What a lane needs to contribute command handlers, without knowing the router.

A handler takes the validated `args` and the caller, returns the result object for `ok`, raises
`Rejected` for a refusal the sender can act on and `Failed` when it acted and it went wrong. The
router (gateway.commands) authenticates, checks and dispatches; lanes only see `Caller`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class Rejected(Exception):
    """Not executed, for a reason the sender can act on."""


class Failed(Exception):
    """Executed (or attempted) and it went wrong."""


class Caller(Protocol):
    @property
    def by(self) -> str:
        """Who issued the command (a verified operator key id, or `local`)."""
        ...

    @property
    def origin(self) -> str:
        """How it arrived: `mqtt` or `local`."""
        ...


Handler = Callable[[dict[str, Any], Caller], Awaitable[dict[str, Any]]]
