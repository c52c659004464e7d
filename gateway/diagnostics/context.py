"""What every check gets: the config, the clock, the running daemon (if any) and the limits."""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import LoadedConfig


@dataclass(frozen=True, slots=True)
class Daemon:
    """A gateway process found running: its status file (fresh) and whether its control socket
    answered a `ping` (None: not asked, e.g. no permission on the socket)."""

    pid: int
    status: dict[str, Any]
    status_age_s: float
    answers: bool | None
    answer_ms: float | None = None
    socket_error: str | None = None


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def ntp_synchronised() -> bool | None:
    """Whether the kernel clock is kept by NTP: systemd's view when there is one (timedatectl),
    else the kernel's own flag (adjtimex in read-only mode: TIME_ERROR means unsynchronised).
    None when neither can be asked."""
    if shutil.which("timedatectl"):
        try:
            out = subprocess.run(
                ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if out.returncode == 0 and out.stdout.strip() in ("yes", "no"):
                return out.stdout.strip() == "yes"
        except (OSError, subprocess.TimeoutExpired):
            pass
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        # struct timex is < 256 bytes on every Linux ABI; modes = 0 (its first field) only reads.
        buf = ctypes.create_string_buffer(512)
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != 5  # TIME_ERROR: the clock is not synchronised


@dataclass
class Context:
    config_path: str
    loaded: LoadedConfig | None = None
    time_ms: Callable[[], int] = wall_ms
    ntp: Callable[[], bool | None] = ntp_synchronised
    daemon: Daemon | None = None
    # Whose permissions the serial-port check judges: the unit's User= when the unit is installed,
    # else whoever runs doctor. Tests set it.
    service_user: str | None = None
    unit: str = "lintel.service"
    timeout_s: float = 5.0
    proc: Path = field(default_factory=lambda: Path("/proc"))
