"""Reading the config for the inspection tools (status, outbox, probe), one way for all of them."""

from __future__ import annotations

from gateway.cli.output import err_console, esc
from gateway.config import LoadedConfig, load_config
from gateway.core import ConfigError


def read_config(path: str) -> LoadedConfig | None:
    """The validated config, or None after printing every problem (file checks skipped: the tools only
    need paths and ids, and must work where the service user's secrets are not readable)."""
    try:
        return load_config(path, check_files=False)
    except ConfigError as exc:
        err_console.print(f"[red]cannot read config[/] {esc(exc.source)}:\n{esc(exc)}", highlight=False)
        return None
