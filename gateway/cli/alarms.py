"""`lintel alarms list|ack`: open alarms of this gateway, and acknowledging one on site.

`list` reads the state database (works whether or not the daemon runs); `ack` asks the running
daemon through its control socket, the same way an upstream `alarm_ack` command does, so the ack
is recorded once, stops the reminders and is reported upstream (`alarm_acked`, via `local`).
"""

from __future__ import annotations

import argparse
import secrets
import time
from typing import Any

from gateway.cli.args import action, tool
from gateway.cli.config_file import read_config
from gateway.cli.output import console, err_console, esc, print_json, table
from gateway.core.durations import for_people
from gateway.lanes.alarms import NS as ALARM_NS
from gateway.runtime.control import SOCKET_NAME, send_local
from gateway.storage.state import StateStore, state_path


def add_parsers(sub: Any) -> None:
    actions = tool(sub, "alarms", "open alarms: list them, acknowledge one")
    action(actions, "list", "open alarms with their age and whether acknowledged")
    q = action(actions, "ack", "acknowledge an open alarm (stops its reminders)")
    q.add_argument("alarm_id", help="the alarm's number, as `lintel alarms list` shows it")
    q.add_argument("--by", default=None, help="who acknowledges (name or staff id), for the record")
    q.add_argument("--note", default=None, help="a short note kept with the acknowledgement")


def cmd_alarms(args: argparse.Namespace) -> int:
    loaded = read_config(args.config)
    if loaded is None:
        return 1
    if args.alarms_command == "list":
        return _list(args, state_path(loaded.state_dir))
    return _ack(args, loaded.runtime_dir / SOCKET_NAME)


def _list(args: argparse.Namespace, path: Any) -> int:
    if not path.exists():
        alarms: list[dict[str, Any]] = []
    else:
        store = StateStore(path, read_only=True)
        try:
            alarms = sorted(store.load(ALARM_NS).values(), key=lambda a: int(a["alarm_id"]))
        finally:
            store.close()
    now_ms = time.time_ns() // 1_000_000
    if args.json:
        print_json({"open_alarms": alarms})
        return 0
    if not alarms:
        console.print("[green]no open alarms[/]")
        return 0
    t = table("open alarms", ["id", "kind", "source", "open for", "acknowledged", "details"])
    for column in t.columns[:4]:
        column.no_wrap = True
    for a in alarms:
        acked = f"by {esc(a['acked_by'])}" if a.get("acked_ms") else "[yellow]no[/]"
        t.add_row(
            esc(a["alarm_id"]),
            f"[red]{esc(a['kind'])}[/]",
            esc(a["source_id"]),
            for_people((now_ms - a["opened_ms"]) / 1000),
            acked,
            esc(_details(a["attrs"])),
        )
    console.print(t)
    return 0


def _details(attrs: dict[str, Any]) -> str:
    keep = (
        "household",
        "rule",
        "silence_h",
        "limit_h",
        "run_min",
        "value",
        "limit",
        "open_s",
        "missing_signals",
    )
    return ", ".join(f"{k}={attrs[k]}" for k in keep if attrs.get(k) not in (None, []))


def _ack(args: argparse.Namespace, socket_path: Any) -> int:
    envelope: dict[str, Any] = {
        "schema": "lintel.command/1",
        "id": f"cli-{secrets.token_hex(6)}",
        "command": "alarm_ack",
        "ts_ms": time.time_ns() // 1_000_000,
        "nonce": secrets.token_hex(12),
        "args": {"alarm_id": args.alarm_id},
    }
    if args.by:
        envelope["by"] = args.by
    if args.note:
        envelope["args"]["note"] = args.note
    try:
        result = send_local(socket_path, envelope, timeout_s=15)
    except OSError as exc:
        err_console.print(
            f"[red]cannot reach the daemon[/] at {esc(socket_path)}: {esc(exc.strerror or exc)}. "
            "Is it running (lintel status)? Acknowledging needs the running gateway."
        )
        return 3
    if args.json:
        print_json(result)
    elif result.get("outcome") == "ok":
        already = result.get("result", {}).get("already_acked")
        console.print(f"alarm {esc(args.alarm_id)} {'was already' if already else 'is now'} acknowledged")
    else:
        err_console.print(f"[red]{esc(result.get('outcome'))}[/]: {esc(result.get('reason'))}")
    return 0 if result.get("outcome") == "ok" else 1
