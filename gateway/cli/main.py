"""`lintel` entry point: argument parsing and dispatch. Each command lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import cast

from gateway.cli.args import action, config_arg, json_arg, tool

# Each command's handler, "module:function", imported only when that command runs: `lintel run`
# must not import every tool's libraries (pymodbus, bleak, OpenCV…). "command action" entries
# name a handler for one action of a command whose actions live in different modules.
HANDLERS = {
    "run": "gateway.cli.run:cmd_run",
    "demo": "gateway.cli.demo:cmd_demo",
    "check-config": "gateway.cli.check_config:cmd_check_config",
    "status": "gateway.cli.status:cmd_status",
    "outbox": "gateway.cli.outbox:cmd_outbox",
    "modbus": "gateway.cli.modbus:cmd_modbus",
    "probe": "gateway.cli.modbus:cmd_probe",
    "ble": "gateway.cli.ble:cmd_ble",
    "alarms": "gateway.cli.alarms:cmd_alarms",
    "camera": "gateway.cli.vision:cmd_camera",
    "models": "gateway.cli.vision:cmd_models",
    "faces": "gateway.cli.faces:cmd_faces",
    "doors": "gateway.cli.doors:cmd_doors",
    "config": "gateway.cli.config_show:cmd_config",
    "keys": "gateway.cli.keys:cmd_keys",
    "keys seal": "gateway.cli.deploy_keys:cmd_seal",
    "keys deploy": "gateway.cli.deploy_keys:cmd_deploy",
    "doctor": "gateway.cli.doctor:cmd_doctor",
    "bundle": "gateway.cli.bundle:cmd_bundle",
    "update": "gateway.cli.update:cmd_update",
    "releases": "gateway.cli.update:cmd_releases",
}


def handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    """The function that runs the parsed command (its module imported now)."""
    chosen = getattr(args, f"{args.command}_command", None)
    name = HANDLERS.get(f"{args.command} {chosen}") or HANDLERS[args.command]
    module, function = name.split(":")
    return cast(Callable[[argparse.Namespace], int], getattr(importlib.import_module(module), function))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lintel", description="Lintel edge gateway for residential buildings."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the gateway daemon (what systemd starts)")
    config_arg(p)

    p = sub.add_parser("demo", help="run a simulated building end to end, no hardware needed")
    p.add_argument("--broker", help="also publish to this broker, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--seconds", type=float, default=0, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument(
        "--state-dir", default="var/demo", help="where the demo keeps its outbox (default var/demo)"
    )
    p.add_argument("--plain", action="store_true", help="print lines instead of a live screen")
    p.add_argument("--site", default="demo-court", help="the building's site name (default demo-court)")
    p.add_argument("--gateway-id", default="demo-gw", help="the gateway's id (default demo-gw)")
    p.add_argument(
        "--config-extra",
        help="TOML file appended to the demo's config (e.g. [commands] with an operator key)",
    )

    p = sub.add_parser("check-config", help="validate a config file and list every problem")
    config_arg(p)
    json_arg(p)

    p = sub.add_parser("status", help="what the running daemon is doing")
    config_arg(p)
    json_arg(p)
    p.add_argument(
        "--watch", action="store_true", help="a live building at a glance, refreshed each second (Ctrl-C)"
    )

    actions = tool(sub, "outbox", "inspect the outbox database")
    action(actions, "stats", "messages and bytes per class, drop counters")
    q = action(actions, "peek", "show the next messages waiting to be sent")
    q.add_argument("--class", dest="klass", choices=["alarm", "event", "state", "telemetry"])
    q.add_argument("--limit", type=int, default=10)

    # the tools' modules, imported here and not at the top: `lintel run` parses with run_parser
    from gateway.cli import (
        alarms,
        ble,
        bundle,
        config_show,
        deploy_keys,
        doctor,
        doors,
        faces,
        keys,
        modbus,
        update,
        vision,
    )

    for add in (
        modbus.add_parsers,
        ble.add_parsers,
        alarms.add_parsers,
        vision.add_parsers,
        faces.add_parsers,
        doors.add_parsers,
        config_show.add_parser,
        doctor.add_parser,
        bundle.add_parser,
        update.add_parsers,
    ):
        add(sub)
    deploy_keys.add_parsers(keys.add_parsers(sub))
    return parser


def run_parser() -> argparse.ArgumentParser:
    """`lintel run` alone: the daemon's start must not import every tool's module (pymodbus,
    bleak, OpenCV…) just to parse its arguments; READY comes sooner and RSS stays lower."""
    parser = argparse.ArgumentParser(prog="lintel run", description="run the gateway daemon")
    config_arg(parser)
    parser.set_defaults(command="run")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"] and not {"-h", "--help"} & set(argv):
        args = run_parser().parse_args(argv[1:])
    else:
        args = build_parser().parse_args(argv)
    return handler(args)(args)


if __name__ == "__main__":
    sys.exit(main())
