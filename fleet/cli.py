"""`lintel-fleet`: the fleet service (ingest workers, web page) and the operator's tools.

Service:   migrate | ingest | catchup | serve | partitions
Operator:  gateways | alarms | devices | loss | ack | command | deploy | update | rollout
The database and broker come from --db / --broker or LINTEL_FLEET_DB / LINTEL_FLEET_BROKER.
Commands that act on gateways (ack, command, deploy, update) are signed here with --key, the
operator's own key file (`lintel keys new`), which never leaves this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

EXIT_CONFIG = 78


def _common(p: argparse.ArgumentParser, broker: bool = False) -> None:
    p.add_argument("--db", default=os.environ.get("LINTEL_FLEET_DB"), help="PostgreSQL DSN (LINTEL_FLEET_DB)")
    if broker:
        p.add_argument(
            "--broker",
            default=os.environ.get("LINTEL_FLEET_BROKER"),
            help="mqtt://host:port (LINTEL_FLEET_BROKER)",
        )
        p.add_argument("--username", help="broker user name")
        p.add_argument("--password-file", help="file holding the broker password")


def _signer(p: argparse.ArgumentParser) -> None:
    _common(p, broker=True)
    p.add_argument("--key", required=True, help="the operator's private key file (lintel keys new)")
    p.add_argument("--key-id", help="its id in the gateways' configs (default: recorded in the file)")
    p.add_argument("--wait-s", type=float, default=20, help="wait this long for each result (0: do not)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lintel-fleet", description=__doc__.split("\n")[0])
    ap.add_argument("--log-level", default="info")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    p = sub.add_parser("migrate", help="apply the database migrations")
    _common(p)
    p = sub.add_parser("partitions", help="create the readings partitions for the coming months")
    _common(p)
    p.add_argument("--months-ahead", type=int, default=3)
    p = sub.add_parser("ingest", help="run one ingest worker (MQTT shared subscription -> PostgreSQL)")
    _common(p, broker=True)
    p.add_argument(
        "--worker-id",
        default=f"fleet-ingest-{socket.gethostname()}",
        help="stable MQTT client id: a restarted worker must reuse it (see README)",
    )
    p.add_argument("--group", default="ingest", help="shared subscription group ($share/GROUP/...)")
    p.add_argument("--prefix", default="lintel", help="the gateways' mqtt.topic_prefix")
    p.add_argument("--batch-max", type=int, default=1000)
    p = sub.add_parser(
        "catchup", help="run the catch-up session (one per fleet): covers the shared group's restart gap"
    )
    _common(p, broker=True)
    p.add_argument("--id", default="fleet-catchup", help="stable MQTT client id, the same after a restart")
    p.add_argument(
        "--echo-timeout-s", type=float, default=60.0, help="write again when no probe came back for this long"
    )
    p.add_argument("--prefix", default="lintel", help="the gateways' mqtt.topic_prefix")
    p.add_argument("--batch-max", type=int, default=1000)
    p = sub.add_parser("serve", help="serve the web page")
    _common(p, broker=True)
    p.add_argument(
        "--listen", default="127.0.0.1:8080", help="HOST:PORT (keep it on loopback; TLS in a proxy)"
    )
    p.add_argument("--token-file", required=True, help="file holding the bearer token")
    p.add_argument("--ack-key", help="the service's key, allowed alarm_ack only on the gateways")
    for name, help_ in (
        ("gateways", "every gateway at a glance"),
        ("alarms", "open alarms across buildings"),
        ("devices", "device health"),
    ):
        p = sub.add_parser(name, help=help_)
        _common(p)
        p.add_argument("--json", action="store_true")
        if name != "gateways":
            p.add_argument("--gateway", help="only this gateway")
    p = sub.add_parser("loss", help="a gateway's loss report")
    _common(p)
    p.add_argument("gateway")
    p = sub.add_parser("ack", help="acknowledge an alarm (signed alarm_ack)")
    _signer(p)
    p.add_argument("gateway")
    p.add_argument("alarm_id")
    p = sub.add_parser("command", help="send a signed command (door_pulse, ping, ...) and print its result")
    _signer(p)
    p.add_argument("gateway")
    p.add_argument("name", metavar="COMMAND")
    p.add_argument("arguments", metavar="ARGS", nargs="?", default="{}", help="a JSON object")
    for name in ("deploy", "update"):
        p = sub.add_parser(
            name, help=f"{'a config' if name == 'deploy' else 'a release'} to gateways, in waves"
        )
        _signer(p)
        if name == "deploy":
            p.add_argument("--config", required=True, help="the config file to deploy")
        else:
            p.add_argument("--version", required=True, help="the release to update to")
        p.add_argument("--gateways", nargs="+", required=True, help="gateway ids, or 'all'")
        p.add_argument("--canary-share", type=float, default=0.1)
        p.add_argument("--max-rollbacks", type=float, default=0.1, help="halt above this share of failures")
        p.add_argument("--follow", action="store_true", help="keep sending waves until done or halted")
    p = sub.add_parser("rollout", help="show a rollout; with --key, send its next wave if it is due")
    _common(p, broker=True)
    p.add_argument("id")
    p.add_argument("--key")
    p.add_argument("--key-id")
    p.add_argument("--follow", action="store_true")
    p.add_argument("--wait-s", type=float, default=20)
    return ap


def need(args: argparse.Namespace, *names: str) -> None:
    for n in names:
        if not getattr(args, n, None):
            env = f"LINTEL_FLEET_{n.upper()}"
            sys.stderr.write(f"lintel-fleet: --{n} is not set (nor {env}): give the {n} to use\n")
            raise SystemExit(EXIT_CONFIG)


def broker_password(args: argparse.Namespace) -> str | None:
    return Path(args.password_file).read_text().strip() if getattr(args, "password_file", None) else None


def _print(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(rows, default=str) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    need(args, "db")
    from fleet import db, queries

    if args.cmd in ("ingest", "catchup"):
        need(args, "broker")
        from fleet.catchup import CatchUp
        from fleet.ingest import Worker, WorkerSettings
        from fleet.probe import CATCHUP_ID_RE

        if args.cmd == "catchup" and not CATCHUP_ID_RE.match(args.id):
            sys.stderr.write(
                f"lintel-fleet: --id {args.id[:80]!r} names a topic level (the echo topic): use up to 64"
                " letters, digits, '.', '_' or '-', starting with a letter or digit\n"
            )
            return EXIT_CONFIG

        settings = WorkerSettings(
            args.db,
            args.broker,
            args.worker_id if args.cmd == "ingest" else args.id,
            getattr(args, "group", "ingest"),
            args.prefix,
            batch_max=args.batch_max,
            username=args.username,
            password=broker_password(args),
        )
        worker = (
            Worker(settings)
            if args.cmd == "ingest"
            else CatchUp(settings, echo_timeout_s=args.echo_timeout_s)
        )
        worker.install_signal_handlers()
        worker.run()
        return 0
    # autocommit: each statement, or each `with conn.transaction()`, commits on its own, so what an
    # ingest worker must see (a command before its result) is visible before anything is published
    conn = db.connect(args.db, autocommit=True)
    if args.cmd == "migrate":
        for name in db.migrate(conn):
            print(f"applied {name}")
        return 0
    if args.cmd == "partitions":
        for name in db.ensure_partitions(conn, dt.date.today(), args.months_ahead):
            print(f"created {name}")
        return 0
    if args.cmd == "serve":
        return _serve(args, conn)
    if args.cmd == "gateways":
        _print(
            queries.gateways(conn),
            args.json,
            [
                "site",
                "gateway_id",
                "online",
                "version",
                "config_sha256",
                "alarms_open",
                "alarms_acked",
                "devices_offline",
                "devices",
            ],
        )
        return 0
    if args.cmd == "alarms":
        _print(
            queries.alarms(conn, args.gateway),
            args.json,
            ["site", "gateway_id", "alarm_id", "kind", "source_id", "state", "acked_by"],
        )
        return 0
    if args.cmd == "devices":
        _print(
            queries.devices(conn, args.gateway),
            args.json,
            ["site", "gateway_id", "device_id", "kind", "online", "errors", "last_error"],
        )
        return 0
    if args.cmd == "loss":
        sys.stdout.write(json.dumps(queries.loss(conn, args.gateway), default=str) + "\n")
        return 0
    from fleet.cli_act import act

    return act(args, conn)


def _serve(args: argparse.Namespace, conn: Any) -> int:
    from fleet import db
    from fleet.operator import OperatorKey, Publisher
    from fleet.web import FleetServer, FleetWeb

    db.migrate(conn)
    token = Path(args.token_file).read_text().strip()
    if len(token) < 16:
        sys.stderr.write(
            f"lintel-fleet: the token in {args.token_file} is shorter than 16 characters: "
            "use a long random one (e.g. openssl rand -hex 24)\n"
        )
        return EXIT_CONFIG
    publisher = key = None
    if args.ack_key:
        need(args, "broker")
        key = OperatorKey(Path(args.ack_key))
        client_id = f"lintel-fleet-web-{os.getpid()}"
        publisher = Publisher(args.broker, client_id, args.username, broker_password(args))
    host, _, port = args.listen.rpartition(":")
    server = FleetServer((host or "127.0.0.1", int(port)), FleetWeb(args.db, token, publisher, key))
    logging.getLogger("lintel.fleet.web").info("serving http://%s:%d/", *server.server_address[:2])
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
