"""`lintel-fleet ack | command | deploy | update | rollout`: the commands that act on gateways.

Each is signed here, on the operator's machine, with the operator's key (`--key`), recorded before
it is published, and matched to its result by correlation id and gateway (fleet/operator.py);
deployments and updates go in waves (fleet/rollout.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from fleet.cli import EXIT_CONFIG, broker_password, need


def act(args: argparse.Namespace, conn: Any) -> int:
    """ack | command | deploy | update | rollout: exit 0 done, 1 refused or failed, 3 no answer."""
    from fleet import rollout
    from fleet.operator import CommandError, OperatorKey, Publisher, send, wait_result

    need(args, "broker")
    if args.cmd == "rollout" and not args.key:
        return _show_rollout(conn, args.id)
    from gateway.commands.signing import KeyFileError

    try:
        key = OperatorKey(Path(args.key), args.key_id)
    except (CommandError, KeyFileError) as exc:
        sys.stderr.write(f"lintel-fleet: {exc}\n")
        return EXIT_CONFIG
    publisher = Publisher(args.broker, f"lintel-fleet-op-{os.getpid()}", args.username, broker_password(args))
    try:
        if args.cmd in ("ack", "command"):
            if args.cmd == "ack":
                name, cmd_args = "alarm_ack", {"alarm_id": args.alarm_id}
            else:
                name, cmd_args = args.name, json.loads(args.arguments)
                if not isinstance(cmd_args, dict):
                    sys.stderr.write("lintel-fleet: ARGS must be a JSON object\n")
                    return 2
            command_id = send(conn, publisher, key, args.gateway, name, cmd_args)
            if args.wait_s <= 0:
                print(command_id)
                return 0
            result = wait_result(conn, command_id, args.wait_s)
            if result is None:
                sys.stderr.write(f"no result for {command_id} within {args.wait_s:g} s\n")
                return 3
            sys.stdout.write(json.dumps(result, default=str) + "\n")
            return 0 if result["outcome"] == "ok" else 1
        if args.cmd in ("deploy", "update"):
            gateways = args.gateways
            if gateways == ["all"]:
                gateways = [r[0] for r in conn.execute("SELECT gateway_id FROM gateways").fetchall()]
            if args.cmd == "deploy":
                text = Path(args.config).read_text()
                target = hashlib.sha256(text.encode()).hexdigest()
                extra: dict[str, Any] = {"config_toml": text}
            else:
                target, extra = args.version, {}
            rid = rollout.create(
                conn, args.cmd, target, gateways, args.canary_share, args.max_rollbacks, extra
            )
            print(rid)
            args.id = rid
        return _drive(args, conn, key, publisher)
    except CommandError as exc:
        sys.stderr.write(f"lintel-fleet: {exc}\n")
        return 1
    finally:
        publisher.close()


def _drive(args: argparse.Namespace, conn: Any, key: Any, publisher: Any) -> int:
    from fleet import rollout
    from fleet.operator import send

    def one(gateway_id: str, command: str, cmd_args: dict[str, Any], command_id: str) -> None:
        send(
            conn, publisher, key, gateway_id, command, cmd_args, rollout_id=args.id, correlation_id=command_id
        )

    while True:
        state = rollout.advance(conn, args.id, one)
        if state != "running" or not args.follow:
            break
        time.sleep(1.0)
    _show_rollout(conn, args.id)
    return 0 if state in ("running", "done") else 1


def _show_rollout(conn: Any, rollout_id: str) -> int:
    row = conn.execute(
        "SELECT kind, target, state, halted_reason FROM rollouts WHERE id = %s", (rollout_id,)
    ).fetchone()
    if row is None:
        sys.stderr.write(f"no rollout {rollout_id}\n")
        return 1
    members = conn.execute(
        "SELECT wave, gateway_id, state, detail FROM rollout_members WHERE rollout_id = %s"
        " ORDER BY wave, gateway_id",
        (rollout_id,),
    ).fetchall()
    conn.commit()
    out = {
        "id": rollout_id,
        "kind": row[0],
        "target": row[1],
        "state": row[2],
        "halted_reason": row[3],
        "members": [{"wave": w, "gateway_id": g, "state": s, "detail": d} for w, g, s, d in members],
    }
    sys.stdout.write(json.dumps(out) + "\n")
    return 0
