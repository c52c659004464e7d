"""`lintel` entry point: argument parsing and dispatch. Each command lives in its own module."""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_CONFIG = os.environ.get("LINTEL_CONFIG", "/etc/lintel/config.toml")


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lintel", description="Lintel edge gateway for residential buildings."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the gateway daemon (what systemd starts)")
    _config_arg(p)

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
    _config_arg(p)
    _json_arg(p)

    p = sub.add_parser("status", help="what the running daemon is doing")
    _config_arg(p)
    _json_arg(p)
    p.add_argument(
        "--watch", action="store_true", help="a live building at a glance, refreshed each second (Ctrl-C)"
    )

    p = sub.add_parser("outbox", help="inspect the outbox database")
    osub = p.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    q = osub.add_parser("stats", help="messages and bytes per class, drop counters")
    _config_arg(q)
    _json_arg(q)
    q = osub.add_parser("peek", help="show the next messages waiting to be sent")
    _config_arg(q)
    _json_arg(q)
    q.add_argument("--class", dest="klass", choices=["alarm", "event", "state", "telemetry"])
    q.add_argument("--limit", type=int, default=10)

    from gateway.cli.modbus import add_parsers as add_modbus_parsers

    add_modbus_parsers(sub, _config_arg, _json_arg)
    from gateway.cli.ble import add_parsers as add_ble_parsers

    add_ble_parsers(sub, _config_arg, _json_arg)
    from gateway.cli.alarms import add_parsers as add_alarm_parsers

    add_alarm_parsers(sub, _config_arg, _json_arg)
    from gateway.cli.vision import add_parsers as add_vision_parsers

    add_vision_parsers(sub, _config_arg, _json_arg)
    from gateway.cli.faces import add_parsers as add_faces_parsers

    add_faces_parsers(sub, _config_arg, _json_arg)
    from gateway.cli.doors import add_parsers as add_doors_parsers

    add_doors_parsers(sub, _config_arg, _json_arg)
    from gateway.cli.config_show import add_parser as add_config_parser

    add_config_parser(sub, _config_arg)
    from gateway.cli.deploy_keys import add_parsers as add_deploy_parsers
    from gateway.cli.keys import add_parsers as add_keys_parsers

    add_deploy_parsers(add_keys_parsers(sub))
    from gateway.cli.bundle import add_parser as add_bundle_parser
    from gateway.cli.doctor import add_parser as add_doctor_parser

    add_doctor_parser(sub, _config_arg, _json_arg)
    add_bundle_parser(sub, _config_arg)
    from gateway.cli.update import add_parsers as add_update_parsers

    add_update_parsers(sub, _config_arg, _json_arg)
    return parser


def run_parser() -> argparse.ArgumentParser:
    """`lintel run` alone: the daemon's start must not import every tool's module (pymodbus,
    bleak, OpenCV…) just to parse its arguments; READY comes sooner and RSS stays lower."""
    parser = argparse.ArgumentParser(prog="lintel run", description="run the gateway daemon")
    _config_arg(parser)
    parser.set_defaults(command="run")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"] and not {"-h", "--help"} & set(argv):
        args = run_parser().parse_args(argv[1:])
    else:
        args = build_parser().parse_args(argv)
    if args.command == "run":
        from gateway.cli.run import cmd_run

        return cmd_run(args)
    if args.command == "demo":
        from gateway.cli.demo import cmd_demo

        return cmd_demo(args)
    if args.command == "check-config":
        from gateway.cli.check_config import cmd_check_config

        return cmd_check_config(args)
    if args.command == "status":
        from gateway.cli.status import cmd_status

        return cmd_status(args)
    if args.command == "outbox":
        from gateway.cli.outbox import cmd_outbox

        return cmd_outbox(args)
    if args.command == "modbus":
        from gateway.cli.modbus import cmd_modbus

        return cmd_modbus(args)
    if args.command == "ble":
        from gateway.cli.ble import cmd_ble

        return cmd_ble(args)
    if args.command == "alarms":
        from gateway.cli.alarms import cmd_alarms

        return cmd_alarms(args)
    if args.command in ("camera", "models"):
        from gateway.cli.vision import cmd_camera, cmd_models

        return cmd_camera(args) if args.command == "camera" else cmd_models(args)
    if args.command == "faces":
        from gateway.cli.faces import cmd_faces

        return cmd_faces(args)
    if args.command == "doors":
        from gateway.cli.doors import cmd_doors

        return cmd_doors(args)
    if args.command == "config":
        from gateway.cli.config_show import cmd_config

        return cmd_config(args)
    if args.command == "keys":
        if args.keys_command in ("seal", "deploy"):
            from gateway.cli.deploy_keys import cmd_deploy, cmd_seal

            return cmd_seal(args) if args.keys_command == "seal" else cmd_deploy(args)
        from gateway.cli.keys import cmd_keys

        return cmd_keys(args)
    if args.command in ("doctor", "bundle"):
        from gateway.cli.bundle import cmd_bundle
        from gateway.cli.doctor import cmd_doctor

        return cmd_doctor(args) if args.command == "doctor" else cmd_bundle(args)
    if args.command in ("update", "releases"):
        from gateway.cli.update import cmd_releases, cmd_update

        return cmd_update(args) if args.command == "update" else cmd_releases(args)
    if args.command == "probe":
        from gateway.cli.modbus import cmd_probe

        return cmd_probe(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
