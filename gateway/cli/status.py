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


def _render(s: dict[str, Any]) -> None:
    console.print(
        f"[bold]{s['site']}/{s['gateway_id']}[/] lintel {s['version']}, pid {s['pid']}, "
        f"up {s['uptime_s']:.0f} s, boot reason {s['boot_reason']}",
        highlight=False,
    )
    if s.get("outbox_recovery"):
        r = s["outbox_recovery"]
        console.print(
            f"[yellow]outbox was corrupt ({r['reason']}); moved to {r['moved_to']}[/]", highlight=False
        )
    t = table("components", ["component", "state", "restarts", "last error"])
    for c in s["components"]:
        style = _STYLE.get(c["state"], "white")
        t.add_row(c["name"], f"[{style}]{c['state']}[/]", str(c["restarts"]), c["last_error"] or "")
    console.print(t)
    up = s["uplink"]
    style = _STYLE.get(up["state"], "white")
    line = f"uplink: [{style}]{up['state']}[/]"
    if up["state"] != "disabled":
        line += f" {up['broker']}, sent {up['sent']}, acked {up['acked']}, in flight {up['inflight']}"
        if up.get("last_error"):
            line += f"\n  last error: {up['last_error']}"
    console.print(line, highlight=False)
    ob = s["outbox"]
    t = table("outbox backlog", ["class", "messages", "bytes"])
    for name in ("alarm", "event", "state", "telemetry"):
        t.add_row(name, str(ob["rows"][name]), human_bytes(ob["bytes"][name]))
    console.print(t)
    console.print(f"last commit {ago(ob['last_commit_ms'])}, last seq {ob['last_seq']}", highlight=False)
    if ob["dropped"]:
        console.print(
            "[yellow]dropped records:[/] " + ", ".join(f"{k} {v}" for k, v in ob["dropped"].items())
        )
    if ob.get("at_disk_floor"):
        console.print("[red]disk floor reached: only alarms are accepted[/]")
    alarms = s.get("alarms") or []
    if alarms:
        t = table("open alarms", ["id", "kind", "source", "open s", "acknowledged"])
        for a in alarms:
            t.add_row(
                a["alarm_id"],
                f"[red]{a['kind']}[/]",
                a["source_id"],
                str(a["open_s"]),
                "yes" if a["acked"] else "no",
            )
        console.print(t)
    else:
        console.print("[green]no open alarms[/]")
    care = s.get("care")
    if care:
        line = f"care watch: {care['households']} households"
        for hid, names in care["missing_data"].items():
            line += f"\n  [yellow]{hid}: no data from {', '.join(names)}[/]"
        console.print(line, highlight=False)
    vision = s.get("vision")
    if vision and vision.get("error"):
        console.print(f"[red]fire lanes NOT watched: {vision['error']}[/]", highlight=False)
    elif vision:
        line = (
            f"fire lanes: detector {vision['detector']}, {vision['detector_runs']} runs, "
            f"{vision['detect_ms_avg']} ms average"
        )
        colours = {"violation": "red", "unknown": "yellow", "parked": "yellow"}
        for cam in vision["cameras"]:
            for lane in cam["lanes"]:
                colour = colours.get(lane["state"], "green")
                extra = f", {lane['dwell_s']} s parked" if "dwell_s" in lane else ""
                extra += f" ({lane['reason']})" if lane.get("reason") else ""
                line += f"\n  [{colour}]{lane['lane']} on {cam['camera']}: {lane['state'].upper()}{extra}[/]"
        console.print(line, highlight=False)
    faces = s.get("faces")
    if faces and faces.get("error"):
        console.print(f"[red]face access NOT running (card/PIN only): {faces['error']}[/]", highlight=False)
    elif faces:
        line = f"face access: {faces['residents']} residents, max distance {faces['threshold']}"
        line += f", liveness {faces['liveness']}"
        for e in faces["entrances"]:
            state = "LOCKED OUT" if e["locked"] else ("watching" if e["camera_online"] else "CAMERA OFFLINE")
            colour = "green" if state == "watching" else "red"
            line += (
                f"\n  [{colour}]{e['id']} on {e['camera']} → door {e['door']}: {state}[/], "
                f"{e['granted']} granted, {e['denied']} denied, {e['pipeline_ms_avg']} ms per frame"
            )
        console.print(line, highlight=False)
    cmds = s.get("commands")
    if cmds and cmds.get("received"):
        console.print(
            f"commands: {cmds['received']} received, {cmds['ok']} ok, {cmds['rejected']} rejected, "
            f"{cmds['failed']} failed",
            highlight=False,
        )
