"""The arguments every `lintel` tool shares, so each tool's parser says only what is its own.

A tool with actions (`lintel alarms list|ack`) is `tool(sub, "alarms", …)`; each action is
`action(actions, "list", …)` and takes `-c/--config` and `--json` unless it says otherwise.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

DEFAULT_CONFIG = os.environ.get("LINTEL_CONFIG", "/etc/lintel/config.toml")


def config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")


def json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def tool(sub: Any, name: str, help: str) -> Any:
    """A tool whose ACTION is required; the chosen action lands in `args.<name>_command`."""
    p = sub.add_parser(name, help=help)
    return p.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")


def action(actions: Any, name: str, help: str, *, config: bool = True, json: bool = True) -> Any:
    """One action of a tool, with `-c/--config` and `--json` unless `config`/`json` say not."""
    q = actions.add_parser(name, help=help)
    if config:
        config_arg(q)
    if json:
        json_arg(q)
    return q


def broker_args(q: argparse.ArgumentParser, *, publish_help: str, wait_s: float) -> None:
    """Sending a signed document to a gateway's broker, and waiting for its answer."""
    q.add_argument("--publish", metavar="URL", help=publish_help)
    q.add_argument("--prefix", default="lintel", help="the gateway's mqtt.topic_prefix (default lintel)")
    q.add_argument("--username", help="broker user name")
    q.add_argument("--password-file", help="file holding the broker password")
    q.add_argument("--ca-file", help="CA certificate for mqtts (default: the system's)")
    q.add_argument("--wait-s", type=float, default=wait_s, help="wait this long for the result (0: do not)")


def signer_args(q: argparse.ArgumentParser, *, key_help: str) -> None:
    """Which operator key signs, and which gateway the signed document is for."""
    q.add_argument("--key", required=True, help=key_help)
    q.add_argument("--key-id", help="the key's id in the configs (default: recorded in the key file)")
    q.add_argument("--gateway", required=True, help="target gateway id ([gateway] id)")
    q.add_argument("--site", required=True, help="target site ([gateway] site)")
