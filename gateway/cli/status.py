"""`lintel status`: components, devices, last errors, outbox backlog and uplink state of the running
daemon; `--watch` shows the same status.json as a live building at a glance (gateway/cli/dashboard.py)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gateway.cli.config_file import read_config
from gateway.cli.output import ago, console, esc, human_bytes, print_json, table
from gateway.config import LoadedConfig
from gateway.core.devices import DeviceReport
from gateway.runtime.status_file import read_status

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
    if args.watch and not args.json:
        return watch(loaded)
    status, age = read_status(loaded.status_path, time.time())
    running = _running(loaded, status, age)
    if args.json:
        print_json({"running": running, "status_age_s": age, "status": status})
        return 0 if running else 3
    if status is None:
        console.print(f"[red]not running[/]: no status file at {esc(loaded.status_path)}", highlight=False)
        return 3
    if not running:
        console.print(
            f"[red]not running[/]: status last written {age:.0f} s ago (state {esc(status.get('state'))})",
            highlight=False,
        )
    _render(status)
    return 0 if running else 3


def _running(loaded: LoadedConfig, status: dict[str, Any] | None, age: float | None) -> bool:
    stale_after = max(10.0, loaded.config.runtime.status_interval_s * 3)
    return status is not None and age is not None and age <= stale_after and status.get("state") != "stopped"


def watch(loaded: LoadedConfig, refresh_s: float = 1.0) -> int:
    """`lintel status --watch`: the dashboard of the daemon's status.json, redrawn each second
    until Ctrl-C. A missing, unreadable or stale status file is said on screen, not an exit."""
    from rich.live import Live

    try:
        with Live(console=console, screen=True, auto_refresh=False) as live:
            while True:
                live.update(_screen(loaded), refresh=True)
                time.sleep(refresh_s)
    except KeyboardInterrupt:
        return 0


def _screen(loaded: LoadedConfig) -> RenderableType:
    from gateway.cli.dashboard import outbox_oldest_ms, render
    from gateway.runtime.report import read_report

    body, age = read_status(loaded.status_path, time.time())
    if body is None:
        return Text(f"not running: no readable status at {loaded.status_path}")
    try:
        report = read_report(body)
    except ValueError as exc:  # a status.json of another version: say so, keep watching
        return Text(f"unreadable status {loaded.status_path}: {exc}")
    size = console.size
    stale = "" if _running(loaded, body, age) else f"[bold red]NOT RUNNING[/] (status {age or 0:.0f}s old)"
    return render(
        report,
        width=size.width,
        height=size.height,
        oldest_ms=outbox_oldest_ms(loaded.outbox_path),
        header_note=stale,
        footer="[dim]lintel status --watch · Ctrl-C stops[/]",
    )


def _devices(devices: Sequence[DeviceReport]) -> Table:
    """Per-device health: state (offline since when), last seen, the driver's counters, values."""
    from gateway.cli.dashboard_panels import clock, key_points

    t = table("devices", ["device", "kind", "state", "last seen", "counters", "latest"])
    for d in devices:
        if d.online is False:
            since = d.offline_since_ms or d.last_seen_ms
            state = "[red]OFFLINE" + (f" since {clock(since)}" if since else "") + "[/]"
        else:
            state = "[green]online[/]" if d.online else "[dim]not yet[/]"
        counters = ", ".join(f"{k} {v}" for k, v in sorted(d.counters.items()) if v)
        # the few telling points (all of them are in --json); ids and counter names are data, not markup
        latest = " ".join(key_points(d, limit=5))
        t.add_row(escape(d.device_id), esc(d.kind), state, ago(d.last_seen_ms), escape(counters), latest)
    return t


def _render(body: dict[str, Any]) -> None:
    from gateway.config.lane_registry import render as render_lane
    from gateway.runtime.report import read_report

    s = read_report(body)
    console.print(
        f"[bold]{esc(s.site)}/{esc(s.gateway_id)}[/] lintel {esc(s.version)}, pid {esc(s.pid)}, "
        f"up {s.uptime_s:.0f} s, boot reason {esc(s.boot_reason)}",
        highlight=False,
    )
    if s.config is not None:
        trial = " [yellow](on probation)[/]" if s.config.on_probation else ""
        console.print(f"config: {s.config.origin} ({s.config.sha256[:12]}){trial}", highlight=False)
    update = s.release.update if s.release else None
    if update is not None and update.phase != "committed":
        colour = "red" if update.phase in ("rolled_back", "failed") else "yellow"
        why = f": {escape(update.reason)}" if update.reason else ""
        console.print(
            f"[{colour}]update {update.from_version} -> {update.to_version} {update.phase.replace('_', ' ')}"
            f"{why}[/]",
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
            f"[yellow]outbox was corrupt ({esc(r.reason)}); moved to {esc(r.moved_to)}{esc(salvage)}[/]",
            highlight=False,
        )
    t = table("components", ["component", "state", "restarts", "last error"])
    for c in s.components:
        style = _STYLE.get(c.state, "white")
        t.add_row(esc(c.name), f"[{style}]{esc(c.state)}[/]", str(c.restarts), esc(c.last_error or ""))
    console.print(t)
    if s.devices:
        console.print(_devices(s.devices))
    up = s.uplink
    style = _STYLE.get(up.state, "white")
    line = f"uplink: [{style}]{esc(up.state)}[/]"
    if up.state != "disabled":
        line += f" {esc(up.broker)}, sent {up.sent}, acked {up.acked}, in flight {up.inflight}"
        if up.last_error:
            line += f"\n  last error: {esc(up.last_error)}"
    console.print(line, highlight=False)
    spb = s.sparkplug
    if spb:  # the Sparkplug B link (docs/bridges.md)
        line = f"sparkplug: {esc(spb.state)} (bdSeq {spb.bd_seq}), sent {spb.sent}, acked {spb.acked}"
        line += f", births {spb.births}, rebirths {spb.rebirths}"
        if spb.rejected:
            line += ", refused " + esc(", ".join(f"{k} {v}" for k, v in spb.rejected.items()))
        console.print(line, highlight=False)
    ob = s.outbox
    t = table("outbox backlog", ["class", "messages", "bytes"])
    for name in ("alarm", "event", "state", "telemetry"):
        t.add_row(name, str(getattr(ob.rows, name)), human_bytes(getattr(ob.bytes, name)))
    console.print(t)
    console.print(f"last commit {esc(ago(ob.last_commit_ms))}, last seq {esc(ob.last_seq)}", highlight=False)
    if ob.dropped:
        console.print(
            "[yellow]dropped records:[/] " + ", ".join(f"{esc(k)} {esc(v)}" for k, v in ob.dropped.items())
        )
    if ob.native_seqs_dropped:
        console.print(f"[yellow]{esc(ob.native_seqs_dropped)} messages dropped unsent (holes in seq)[/]")
    if ob.at_disk_floor:
        console.print("[red]disk floor reached: only alarms and events are accepted[/]")
    if ob.degraded:
        held = f" ({ob.held_in_memory} alarms/events held in memory)" if ob.held_in_memory else ""
        console.print(f"[yellow]outbox degraded: {esc(ob.degraded)}{esc(held)}[/]", highlight=False)
    if ob.corrupt_rows:
        console.print(f"[yellow]{esc(ob.corrupt_rows)} corrupt outbox rows were found and not published[/]")
    if s.alarms:
        t = table("open alarms", ["id", "kind", "source", "open s", "acknowledged"])
        for a in s.alarms:
            t.add_row(
                esc(a.alarm_id),
                f"[red]{esc(a.kind)}[/]",
                esc(a.source_id),
                str(a.open_s),
                "yes" if a.acked else "no",
            )
        console.print(t)
    else:
        console.print("[green]no open alarms[/]")
    for name, reason in s.unavailable.items():
        what = "face access NOT running (card/PIN only)" if name == "face_access" else f"{name} NOT running"
        console.print(f"[red]{esc(what)}: {esc(reason)}[/]", highlight=False)
    for name, lane in s.lanes.items():
        console.print("\n".join(render_lane(name, lane)), highlight=False)
    cmds = s.commands
    if cmds.received:
        console.print(
            f"commands: {esc(cmds.received)} received, {esc(cmds.ok)} ok, {esc(cmds.rejected)} rejected, "
            f"{esc(cmds.failed)} failed",
            highlight=False,
        )
