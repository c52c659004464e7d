"""`lintel keys seal|deploy`: the office's side of config deployments (docs/deployments.md).

`seal` seals one secret (read from a file or stdin, never from the command line, where `ps` and
shell histories would keep it) to a gateway's public key, as its birth publishes it (`deploy_key`).
`deploy` builds a `deploy_config` envelope from a config document, seals each `--secret NAME=FILE` to
the gateway's key, signs it with an operator key whose role allows `deploy_config` and prints it;
with `--publish` it sends it retained to the gateway's deployment topic and prints the result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.cli.args import broker_args, signer_args
from gateway.cli.output import err_console


def add_parsers(ksub: Any) -> None:
    q = ksub.add_parser("seal", help="seal a secret to a gateway's public key (deploy_key in its birth)")
    q.add_argument("--to", required=True, help="the gateway's deploy_key (base64)")
    q.add_argument("--name", required=True, help="the secret's name, as the config references it")
    q.add_argument("--value-file", help="file holding the secret (default: read stdin)")
    q = ksub.add_parser("deploy", help="print a signed config deployment (and optionally publish it)")
    signer_args(q, key_help="private key file of an operator allowed deploy_config")
    q.add_argument("--version", type=int, required=True, help="deployment version: above the last one sent")
    q.add_argument("--config", required=True, help="the config document (TOML) to deploy")
    q.add_argument("--secret", action="append", default=[], metavar="NAME=FILE", help="a secret to seal")
    q.add_argument("--to", help="the gateway's deploy_key (needed with --secret)")
    broker_args(q, publish_help="also send it, retained: mqtt://host:port or mqtts://…", wait_s=30)


def cmd_seal(args: argparse.Namespace) -> int:
    from gateway.config.secrets import seal

    value = Path(args.value_file).read_text() if args.value_file else sys.stdin.read()
    try:
        sys.stdout.write(seal(args.to, args.name, value.rstrip("\r\n")) + "\n")
    except ValueError as exc:
        err_console.print(f"[red]cannot seal[/]: {exc}")
        return 2
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from gateway.cli.keys import publish, signing_key
    from gateway.commands.signing import deployment, sign

    loaded = signing_key(args)
    if isinstance(loaded, int):
        return loaded
    key, key_id = loaded
    secrets: dict[str, str] = {}
    for item in args.secret:
        name, sep, file = item.partition("=")
        if not sep or not file:
            err_console.print(f"[red]--secret {item}[/]: expected NAME=FILE")
            return 2
        secrets[name] = Path(file).read_text().rstrip("\r\n")
    try:
        body = deployment(
            Path(args.config).read_text(encoding="utf-8"),
            args.version,
            gateway_id=args.gateway,
            site=args.site,
            gateway_public_key=args.to,
            secrets=secrets,
        )
    except (ValueError, OSError) as exc:
        err_console.print(f"[red]cannot build the deployment[/]: {exc}")
        return 2
    signed = sign(body, key, key_id)
    sys.stdout.write(json.dumps(signed, separators=(",", ":"), ensure_ascii=False) + "\n")
    if not args.publish:
        return 0
    return publish(args, signed, "/deployment", retain=True)
