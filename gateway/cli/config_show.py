"""`lintel config show [--origin] [--json]`: the config a start would run now, and where each value
came from: the installer's local file (`local`) or a deployment from the office (`deployment vN`).

Read-only: no secret is opened and no deployment file is changed. Secret values the local file
holds inline are redacted like the support bundle does; deployed secrets appear by name only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.cli.args import action, tool
from gateway.cli.config_file import read_config
from gateway.cli.output import console, print_json


def add_parser(sub: Any) -> None:
    actions = tool(sub, "config", "the effective config (local file + deployment)")
    q = action(actions, "show", "print the config a start would run now")
    q.add_argument("--origin", action="store_true", help="name where each value came from")


def _leaves(doc: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(doc, dict):
        found: list[tuple[str, Any]] = []
        for key, value in doc.items():
            found.extend(_leaves(value, f"{prefix}.{key}" if prefix else key))
        return found
    return [(prefix, doc)]


def cmd_config(args: argparse.Namespace) -> int:
    from gateway.config.deploy_files import DeployFiles
    from gateway.config.effective import preview
    from gateway.diagnostics.redact import redact_config

    loaded = read_config(args.config)
    if loaded is None:
        return 78
    shown = preview(loaded, DeployFiles(loaded.state_dir))
    raw = redact_config(shown.raw)
    if args.json:
        print_json({"config": raw, "origins": shown.origins, "notes": shown.notes})
        return 0
    for note in shown.notes:
        console.print(f"[yellow]# {note}[/]", highlight=False)
    for path, value in _leaves(raw):
        line = f"{path} = {json.dumps(value, ensure_ascii=False, default=str)}"
        if args.origin:
            line += f"  # {shown.origins.get(path, 'default')}"
        sys.stdout.write(line + "\n")
    return 0
