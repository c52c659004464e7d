"""`lintel status`: components, last errors, outbox backlog and uplink state of the running daemon."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.config_file import read_config
from gateway.cli.output import ago, console, human_bytes, print_json, table
from gateway.status import read_status

_STYLE = {
    "running": "green",
    "connected": "green",
    "retrying": "yellow",
    "backoff": "yellow",
    "connecting": "yellow",
    "stalled": "red",
    "failed": "red",
    "stopped": "dim",
}


def cmd_status(args: argparse.Namespace) -> int:
    loaded = read_config(args.config)
    if loaded is None:
        return 1
    status, age = read_status(loaded.status_path)
    stale_after = max(10.0, loaded.config.runtime.status_interval_s * 3)
    running = (
        status is not None and age is not None and age <= stale_after and status.get("state") != "stopped"
    )
    if args.json:
        print_json({"running": running, "status_age_s": age, "status": status})
        return 0 if running else 3
    if status is None:
        console.print(f"[red]not running[/]: no status file at {loaded.status_path}", highlight=False)
        return 3
    if not running:
        console.print(
            f"[red]not running[/]: status last written {age:.0f} s ago (state {status.get('state')})",
            highlight=False,
        )
    _render(status)
    return 0 if running else 3


def _render(body: dict[str, Any]) -> None:
    from gateway.lanes.registry import render as render_lane
    from gateway.runtime.report import read_report

    s = read_report(body)
    console.print(
        f"[bold]{s.site}/{s.gateway_id}[/] lintel {s.version}, pid {s.pid}, "
        f"up {s.uptime_s:.0f} s, boot reason {s.boot_reason}",
        highlight=False,
    )
    if s.outbox_recovery:
        r = s.outbox_recovery
        salvage = (
            f"; {r.rows_recovered} messages recovered, {r.rows_lost} lost"
            if r.rows_recovered is not None
            else ""
        )
        console.print(
            f"[yellow]outbox was corrupt ({r.reason}); moved to {r.moved_to}{salvage}[/]", highlight=False
        )
    t = table("components", ["component", "state", "restarts", "last error"])
    for c in s.components:
        style = _STYLE.get(c.state, "white")
        t.add_row(c.name, f"[{style}]{c.state}[/]", str(c.restarts), c.last_error or "")
    console.print(t)
    up = s.uplink
    style = _STYLE.get(up.state, "white")
    line = f"uplink: [{style}]{up.state}[/]"
    if up.state != "disabled":
        line += f" {up.broker}, sent {up.sent}, acked {up.acked}, in flight {up.inflight}"
        if up.last_error:
            line += f"\n  last error: {up.last_error}"
    console.print(line, highlight=False)
    ob = s.outbox
    t = table("outbox backlog", ["class", "messages", "bytes"])
    for name in ("alarm", "event", "state", "telemetry"):
        t.add_row(name, str(getattr(ob.rows, name)), human_bytes(getattr(ob.bytes, name)))
    console.print(t)
    console.print(f"last commit {ago(ob.last_commit_ms)}, last seq {ob.last_seq}", highlight=False)
    if ob.dropped:
        console.print("[yellow]dropped records:[/] " + ", ".join(f"{k} {v}" for k, v in ob.dropped.items()))
    if ob.at_disk_floor:
        console.print("[red]disk floor reached: only alarms and events are accepted[/]")
    if ob.degraded:
        held = f" ({ob.held_in_memory} alarms/events held in memory)" if ob.held_in_memory else ""
        console.print(f"[yellow]outbox degraded: {ob.degraded}{held}[/]", highlight=False)
    if ob.corrupt_rows:
        console.print(f"[yellow]{ob.corrupt_rows} corrupt outbox rows were found and not published[/]")
    if s.alarms:
        t = table("open alarms", ["id", "kind", "source", "open s", "acknowledged"])
        for a in s.alarms:
            t.add_row(a.alarm_id, f"[red]{a.kind}[/]", a.source_id, str(a.open_s), "yes" if a.acked else "no")
        console.print(t)
    else:
        console.print("[green]no open alarms[/]")
    for name, reason in s.unavailable.items():
        what = "face access NOT running (card/PIN only)" if name == "face_access" else f"{name} NOT running"
        console.print(f"[red]{what}: {reason}[/]", highlight=False)
    for name, lane in s.lanes.items():
        console.print("\n".join(render_lane(name, lane)), highlight=False)
    cmds = s.commands
    if cmds.received:
        console.print(
            f"commands: {cmds.received} received, {cmds.ok} ok, {cmds.rejected} rejected, "
            f"{cmds.failed} failed",
            highlight=False,
        )
