"""`lintel keys new|sign`: operator keys for signed commands (docs/commands.md).

`seal` and `deploy` (config deployments) live in `deploy_keys.py`, which builds on this module.
`new` makes an Ed25519 key pair: the private key goes to a file (mode 0600, never overwritten) that
stays with the operator, and the public key is printed as the `[[commands.operators]]` lines to add
to each gateway's config. `sign` builds a command envelope for one gateway, signs it and prints it as
one JSON line; with `--publish` it also sends it to the broker and prints the gateway's result.
Neither needs a gateway config: they run on the operator's machine.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.cli.args import action, broker_args, signer_args, tool
from gateway.cli.output import err_console, esc
from gateway.commands.signing import (
    KeyFileError,
    envelope,
    load_private_key,
    new_key,
    public_key_b64,
    sign,
    write_private_key,
)

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def add_parsers(sub: Any) -> Any:
    """The `keys` parser's actions; returns them, so `deploy_keys` adds its own beside them."""
    actions = tool(sub, "keys", "operator keys: make one, sign a command with it")
    q = action(actions, "new", "make a key pair; print the public key line for the config", config=False)
    q.add_argument("--id", required=True, help="the operator's key id (a-z, 0-9, _ or -), e.g. night-guard")
    q.add_argument("--out", help="private key file to create (default: ./<id>.key)")
    q = action(
        actions,
        "sign",
        "print a signed command envelope (and optionally publish it)",
        config=False,
        json=False,
    )
    signer_args(q, key_help="private key file made by `lintel keys new`")
    q.add_argument("--expires-s", type=float, help="not to be executed later than this many seconds")
    broker_args(q, publish_help="also send it: mqtt://host:port or mqtts://host:port", wait_s=15)
    q.add_argument("name", metavar="COMMAND", help="ping, alarm_ack, door_pulse, reload_config, …")
    q.add_argument("arguments", metavar="ARGS", nargs="?", default="{}", help="arguments as a JSON object")

    return actions


def cmd_keys(args: argparse.Namespace) -> int:
    return _new(args) if args.keys_command == "new" else _sign(args)


def _new(args: argparse.Namespace) -> int:
    if not ID_RE.match(args.id):
        err_console.print(f"[red]--id {esc(repr(args.id))}[/]: use 1-64 characters of a-z, 0-9, '_' or '-'")
        return 2
    path = Path(args.out or f"{args.id}.key")
    key = new_key()
    try:
        write_private_key(path, key, args.id)
    except (KeyFileError, OSError) as exc:
        err_console.print(f"[red]cannot write the key[/]: {esc(exc)}")
        return 1
    public = public_key_b64(key)
    if args.json:
        out = {"id": args.id, "public_key": public, "private_key_file": str(path)}
        sys.stdout.write(json.dumps(out) + "\n")
        return 0
    err_console.print(
        f"private key written to {esc(path)} (mode 0600): keep it with the operator, never on a gateway.\n"
        "Add these lines to each gateway's config, with the commands (and doors) this key may use:"
    )
    sys.stdout.write(f'[[commands.operators]]\nid = "{args.id}"\npublic_key = "{public}"\nallow = ["ping"]\n')
    return 0


def signing_key(args: argparse.Namespace) -> tuple[Any, str] | int:
    """The operator's key from `--key` and its id (`--key-id`, else the one the file records), or
    the exit code after saying what is wrong (1: unreadable key file, 2: no usable id)."""
    try:
        key, recorded_id = load_private_key(Path(args.key))
    except KeyFileError as exc:
        err_console.print(f"[red]{esc(exc)}[/]")
        return 1
    key_id = args.key_id or recorded_id
    if not key_id or not ID_RE.match(key_id):
        err_console.print("[red]no key id[/]: the key file records none; give --key-id (its id in configs)")
        return 2
    return key, key_id


def _sign(args: argparse.Namespace) -> int:
    loaded = signing_key(args)
    if isinstance(loaded, int):
        return loaded
    key, key_id = loaded
    try:
        command_args = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        err_console.print(f"[red]ARGS is not JSON[/]: {esc(exc)}")
        return 2
    if not isinstance(command_args, dict):
        err_console.print('[red]ARGS must be a JSON object[/], e.g. \'{"door": "lobby"}\'')
        return 2
    body = envelope(args.name, command_args, gateway_id=args.gateway, site=args.site)
    if args.expires_s is not None:
        body["expires_ms"] = body["ts_ms"] + int(args.expires_s * 1000)
    signed = sign(body, key, key_id)
    sys.stdout.write(json.dumps(signed, separators=(",", ":"), ensure_ascii=False) + "\n")
    if not args.publish:
        return 0
    return publish(args, signed)


def publish(args: argparse.Namespace, signed: dict[str, Any], suffix: str = "", retain: bool = False) -> int:
    """Send `signed` to the gateway's command topic (+ `suffix`) and print the result it answers."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    url = urlsplit(args.publish)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        err_console.print(
            f"[red]--publish {esc(args.publish)}[/]: expected mqtt://host:port or mqtts://host:port"
        )
        return 2
    base = f"{args.prefix}/{args.site}/{args.gateway}/command"
    result: dict[str, Any] = {}
    arrived = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        try:
            doc = json.loads(msg.payload)
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(doc, dict) and doc.get("correlation_id") == signed["id"]:
            result.update(doc)
            arrived.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"lintel-keys-{signed['nonce'][:8]}")
    if url.scheme == "mqtts":
        client.tls_set(ca_certs=args.ca_file)
    if args.username:
        password = Path(args.password_file).read_text().strip() if args.password_file else None
        client.username_pw_set(args.username, password)
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    try:
        client.connect(url.hostname, url.port or (8883 if url.scheme == "mqtts" else 1883), 30)
    except OSError as exc:
        err_console.print(f"[red]cannot reach the broker[/] {esc(args.publish)}: {esc(exc)}")
        return 3
    client.loop_start()
    try:
        if args.wait_s > 0:
            client.subscribe(f"{base}/result", qos=1)
            subscribed.wait(10)
        client.publish(base + suffix, json.dumps(signed).encode(), qos=1, retain=retain).wait_for_publish(10)
        if args.wait_s <= 0:
            return 0
        if not arrived.wait(args.wait_s):
            err_console.print(f"[yellow]no result within {args.wait_s:g} s[/] on {esc(base)}/result")
            return 3
    finally:
        client.loop_stop()
        client.disconnect()
    sys.stdout.write(json.dumps(result) + "\n")
    if result.get("outcome") != "ok":
        err_console.print(f"[red]{esc(result.get('outcome'))}[/]: {esc(result.get('reason'))}")
        return 1
    return 0
