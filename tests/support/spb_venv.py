"""The independent Sparkplug host's venv: pysparkplug pins paho-mqtt < 2, which Lintel cannot share,
so it lives in a venv of its own under .cache/ (made once, pinned versions) and runs as a subprocess
(tests/support/spb_host.py)."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".cache" / "spb-host"
PINS = ("pysparkplug==0.6.1", "paho-mqtt==1.6.1", "protobuf==7.36.2")
HOST = Path(__file__).with_name("spb_host.py")


def python() -> Path:
    """The venv's python, made on first use (a few seconds from a warm pip cache). Test workers
    running side by side (xdist) take turns: the first makes it, the others find it made."""
    exe = VENV / "bin" / "python"
    stamp = VENV / "pins.json"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / "spb-host.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if exe.exists() and stamp.exists() and json.loads(stamp.read_text()) == list(PINS):
            return exe
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [str(exe), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS],
            check=True,
            timeout=600,
        )
        stamp.write_text(json.dumps(list(PINS)))
    return exe
