"""The commands every gateway serves, each given only what it uses.

Lanes contribute their own handlers (`door_pulse` by the doors, `snapshot` by the fire lanes,
`faces_delete` by face access); these four are the gateway's own. A command this gateway has no
handler for is answered `rejected: unavailable` by the router with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway import __version__
from gateway.core import Clock, Record
from gateway.core.commands import Caller, Handler, Rejected
from gateway.lanes.alarms import AckOutcome, AlarmBook


def ping_handler(clock: Clock, started_mono: float, config_sha256: Callable[[], str]) -> Handler:
    async def ping(_args: dict[str, Any], _caller: Caller) -> dict[str, Any]:
        return {
            "pong": True,
            "version": __version__,
            "uptime_s": round(clock.monotonic() - started_mono, 1),
            "config_sha256": config_sha256(),
        }

    return ping


def outbox_stats_handler(snapshot: Callable[[], dict[str, Any]]) -> Handler:
    async def outbox_stats(_args: dict[str, Any], _caller: Caller) -> dict[str, Any]:
        return snapshot()

    return outbox_stats


def alarm_ack_handler(book: AlarmBook, clock: Clock, emit: Callable[[Record], bool]) -> Handler:
    async def alarm_ack(args: dict[str, Any], caller: Caller) -> dict[str, Any]:
        alarm_id = args["alarm_id"]
        outcome, events = book.ack(alarm_id, clock.time_ms(), caller.by, caller.origin)
        if outcome == AckOutcome.UNKNOWN:
            raise Rejected(f"unknown alarm: no open alarm has id {alarm_id}")
        for event in events:
            emit(event)
        alarm = book.by_id[alarm_id]
        return {"alarm_id": alarm_id, "kind": alarm.kind, "already_acked": outcome == AckOutcome.ALREADY}

    return alarm_ack


def reload_handler(
    reload: Callable[[str | None, str | None, frozenset[str] | None], Awaitable[dict[str, Any]]],
    doors_of: Callable[[Caller], frozenset[str] | None],
) -> Handler:
    """`reload_config`; `doors_of(caller)` is the doors whose tunables that caller may change (the
    doors its key may pulse), None for every door (the local socket, a key with doors ["*"])."""

    async def reload_config(args: dict[str, Any], caller: Caller) -> dict[str, Any]:
        return await reload(args.get("config_toml"), args.get("expect_sha256"), doors_of(caller))

    return reload_config
