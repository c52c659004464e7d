"""`lintel check-config`: every problem in one go, as `path: what (got X); expected Y`.

Exit 0 when the config is usable (warnings, such as a password over plain MQTT, are printed but do
not fail it), 78 (EX_CONFIG, as `lintel run` on the same problems) when it has problems, with or
without `--json`."""

from __future__ import annotations

import argparse

from gateway.cli.output import console, err_console, esc, print_json
from gateway.config import config_warnings, load_config
from gateway.core import ConfigError

EX_CONFIG = 78  # sysexits.h: a wrong config; `lintel run` exits with it too


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        if args.json:
            print_json({"ok": False, "file": exc.source, "problems": [str(p) for p in exc.problems]})
        else:
            err_console.print(
                f"[bold red]{esc(exc.source)}: {len(exc.problems)} problem(s)[/]", highlight=False
            )
            for problem in exc.problems:
                print(str(problem))
        return EX_CONFIG
    cfg = loaded.config
    warnings = [str(w) for w in config_warnings(loaded)] + cfg.faces.warnings(cfg.face_access)
    if cfg.face_access:
        from gateway.lanes.faces.keys import key_beside_gallery

        if (beside := key_beside_gallery(cfg.faces, loaded.state_dir)) is not None:
            warnings.append(beside)
    summary = {
        "ok": True,
        "file": str(loaded.path),
        "sha256": loaded.sha256,
        "gateway": f"{cfg.gateway.site}/{cfg.gateway.id}",
        "sources": [f"{s.id} ({s.type})" for s in cfg.sources],
        "broker": cfg.mqtt.url if cfg.mqtt else None,
        "warnings": warnings,
    }
    if args.json:
        print_json(summary)
    else:
        console.print(f"[green]ok[/]: {esc(loaded.path)}", highlight=False)
        console.print(
            f"gateway {esc(summary['gateway'])}, {len(cfg.sources)} sources, "
            f"broker {esc(summary['broker'] or 'none')}"
        )
        for warning in warnings:
            err_console.print(f"[yellow]warning[/]: {esc(warning)}", highlight=False)
    return 0
