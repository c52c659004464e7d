"""`lintel doctor [-c CONFIG] [--json]`: one line per check, ✓ / ⚠ / ✗, and what to do.

Exit code 0 when every line is ✓ or ⚠, 1 when any is ✗ (2: the config cannot be read at all is
also a ✗, so 1). Safe while the gateway runs: see `gateway.diagnostics`.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.text import Text

from gateway.cli.args import config_arg, json_arg
from gateway.cli.output import console, err_console, print_json
from gateway.diagnostics.context import Context
from gateway.diagnostics.report import Level, worst
from gateway.diagnostics.runner import run_doctor

_COLOUR = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "red"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "doctor", help="check everything (config, clock, broker, ports, meters, cameras…) and say what to fix"
    )
    config_arg(p)
    json_arg(p)
    p.add_argument(
        "--timeout", type=float, default=5.0, help="seconds per network or device step (default 5)"
    )


def cmd_doctor(args: argparse.Namespace) -> int:
    ctx = Context(config_path=args.config, timeout_s=args.timeout)
    if args.json:
        findings = run_doctor(ctx)
    else:
        with err_console.status("checking…") as status:
            findings = run_doctor(ctx, progress=lambda name: status.update(f"checking {escape(name)}…"))
    level = worst(findings)
    if args.json:
        print_json(
            {
                "result": level.label,
                "counts": {lv.label: sum(f.level == lv for f in findings) for lv in Level},
                "findings": [f.as_dict() for f in findings],
            }
        )
    else:
        for f in findings:
            colour = _COLOUR[f.level]
            # Findings quote data (section names like [mqtt], URLs, device names, paths): never markup.
            line = Text.assemble((f.level.mark, colour), " ", (f.check, "bold"), f": {f.detail}")
            console.print(line, highlight=False)
            if f.fix:
                console.print(Text(f"    → {f.fix}", style=colour), highlight=False)
        counts = ", ".join(f"{sum(f.level == lv for f in findings)} {lv.mark}" for lv in Level)
        console.print(f"\n{counts}", highlight=False)
    return 1 if level == Level.FAIL else 0
