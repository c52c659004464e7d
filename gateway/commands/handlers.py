"""The commands this gateway executes, bound to the running daemon's parts.

Each handler takes the validated `args` and the context, returns the result object for `ok`,
raises `Rejected` for a refusal it can explain and `Failed` when it acted and it went wrong.
`snapshot` and `faces_delete` are registered by the camera and face access lanes when present;
until then the router answers them `rejected: unavailable` with the reason.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.alarms import AckOutcome
from gateway.commands.router import CommandContext, Failed, Handler, Rejected
from gateway.doors import DoorError

if TYPE_CHECKING:
    from gateway.runtime.daemon import Daemon


def build_handlers(daemon: Daemon) -> dict[str, Handler]:
    async def ping(_args: dict[str, Any], _ctx: CommandContext) -> dict[str, Any]:
        return {
            "pong": True,
            "version": __version__,
            "uptime_s": round(time.monotonic() - daemon.started_mono, 1),
            "config_sha256": daemon.loaded.sha256,
        }

    async def outbox_stats(_args: dict[str, Any], _ctx: CommandContext) -> dict[str, Any]:
        return daemon.writer.snapshot()

    async def alarm_ack(args: dict[str, Any], ctx: CommandContext) -> dict[str, Any]:
        alarm_id = args["alarm_id"]
        outcome, events = daemon.book.ack(alarm_id, daemon.clock.time_ms(), ctx.by, ctx.origin)
        if outcome == AckOutcome.UNKNOWN:
            raise Rejected(f"unknown alarm: no open alarm has id {alarm_id}")
        for event in events:
            daemon.pipeline.submit(event)
        alarm = daemon.book.by_id[alarm_id]
        return {"alarm_id": alarm_id, "kind": alarm.kind, "already_acked": outcome == AckOutcome.ALREADY}

    async def reload_config(args: dict[str, Any], _ctx: CommandContext) -> dict[str, Any]:
        return await daemon.reload(args.get("config_toml"), args.get("expect_sha256"))

    handlers: dict[str, Handler] = {
        "ping": ping,
        "outbox_stats": outbox_stats,
        "alarm_ack": alarm_ack,
        "reload_config": reload_config,
    }

    async def door_pulse(args: dict[str, Any], ctx: CommandContext) -> dict[str, Any]:
        door = args["door"]
        if door not in daemon.doors:
            known = ", ".join(sorted(daemon.doors.doors)) or "none"
            raise Rejected(f"unknown door: {door} (configured: {known})")
        try:
            return await daemon.doors.pulse(door, args.get("pulse_s"), by=ctx.by, via=ctx.origin)
        except DoorError as exc:
            raise Failed(str(exc)) from None

    if daemon.config.doors:
        handlers["door_pulse"] = door_pulse
    return handlers
