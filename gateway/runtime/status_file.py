"""The status file: how `lintel status` learns about the running daemon.

The daemon rewrites `<runtime_dir>/status.json` atomically every `runtime.status_interval_s`
(on tmpfs under systemd, so it costs the SD card nothing). A file older than three intervals means
the daemon is not running (or hung), and the reader says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_status(path: Path, text: str) -> None:
    """Replace the status file with `text` (a report already encoded as JSON), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_status(path: Path, now_s: float) -> tuple[dict[str, Any] | None, float | None]:
    """(status, age in seconds at wall-clock time `now_s`) or (None, None) when there is no file."""
    try:
        text = path.read_text()
        age = now_s - path.stat().st_mtime
    except FileNotFoundError:
        return None, None
    try:
        return json.loads(text), age
    except json.JSONDecodeError:
        return None, age


def status_line(state: str, backlog_rows: int, uplink: Any) -> str:
    """The one-line status systemd shows (`systemctl status lintel`)."""
    link = uplink.state if uplink is not None else "no broker configured"
    return f"{state}; outbox {backlog_rows} messages; uplink {link}"
