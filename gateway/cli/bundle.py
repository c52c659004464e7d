"""`lintel bundle [-c CONFIG] [-o FILE]`: one tarball a technician can send to support.

Inside: the config (secrets redacted), the daemon's status, `lintel doctor --json`, recent logs
(the systemd journal when there is one), versions, outbox statistics, and a README saying what is
and is not there. Never inside: passwords, keys, bindkeys, deployed secrets and the gateway's own
deployment key (see `gateway.diagnostics.redact`), the face gallery, pictures, the outbox's
messages. Written with mode 0600.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import time
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.cli.args import config_arg
from gateway.cli.output import console, err_console, esc
from gateway.diagnostics.context import Context
from gateway.diagnostics.redact import Scrubber, inline_secrets, redact_config, secret_files
from gateway.diagnostics.runner import run_doctor

LOG_LINES = 2000
_PACKAGES = (
    "lintel-gateway", "paho-mqtt", "pydantic", "pymodbus", "pyserial", "bleak", "dbus-fast",
    "opencv-python-headless", "onnxruntime", "numpy", "cryptography",
)  # fmt: skip


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bundle", help="a support bundle (tar.gz): config without secrets, status, doctor, logs"
    )
    config_arg(p)
    p.add_argument(
        "-o", "--output", help="file to write (default lintel-bundle-<gateway>-<time>.tar.gz here)"
    )


def cmd_bundle(args: argparse.Namespace) -> int:
    members, name = build_members(args.config)
    out = Path(args.output or f"{name}.tar.gz")
    write_tar(out, name, members)
    console.print(
        f"support bundle written: {esc(out)} ({out.stat().st_size // 1024} KiB); no passwords or keys inside"
    )
    return 0


def build_members(config_path: str) -> tuple[dict[str, bytes], str]:
    """The bundle's files (name → bytes, every one scrubbed) and the bundle's folder name."""
    scrub = Scrubber()
    members: dict[str, bytes] = {}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    gateway_id = "unknown"
    path = Path(config_path)
    raw: dict[str, Any] | None = None
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # without a parse there is no telling secrets from the rest: the text stays out
        members["config-NOT-INCLUDED.txt"] = (
            f"{path}: cannot be read as TOML ({exc}); not included\n".encode()
        )
    if raw is not None:
        base = path.resolve().parent

        def resolve(name: str) -> Path:
            p = Path(name).expanduser()
            return p if p.is_absolute() else base / p

        for secret_file in secret_files(raw, resolve):
            scrub.add_file(secret_file)
        scrub.add_all(inline_secrets(raw))
        gw = raw.get("gateway", {}) if isinstance(raw.get("gateway"), dict) else {}
        gateway_id = str(gw.get("id", "unknown"))
        state_dir = resolve(str(gw.get("state_dir", "/var/lib/lintel")))
        faces = raw.get("faces", {}) if isinstance(raw.get("faces"), dict) else {}
        scrub.add_file(resolve(faces["key_file"]) if "key_file" in faces else state_dir / "faces.key")
        scrub.add_all(_deployed_secrets(state_dir))
        members["config.redacted.json"] = _json({"file": str(path), "config": redact_config(raw)})

    findings = run_doctor(Context(config_path=config_path))
    members["doctor.json"] = _json([f.as_dict() for f in findings])
    members.update(_from_loaded(config_path))
    members["versions.json"] = _json(versions())
    members["logs.txt"] = journal()
    members["README.txt"] = _readme(sorted(members)).encode()
    name = f"lintel-bundle-{gateway_id}-{stamp}"
    clean: dict[str, bytes] = {}
    for member, data in members.items():
        data = scrub.scrub(data)
        if scrub.leaks(data):  # cannot happen after scrub; kept as the last word on it
            clean[f"{member}.WITHHELD.txt"] = b"withheld: it still contained a secret after scrubbing\n"
            continue
        clean[member] = data
    return clean, name


def _deployed_secrets(state_dir: Path) -> list[bytes | str]:
    """Secrets that deployments brought (docs/deployments.md) and this gateway's own key: never
    inside, even where a log line quoted one."""
    from gateway.config.secrets import KEY_NAME, SecretError, SecretStore

    found: list[bytes | str] = []
    with contextlib.suppress(SecretError):
        found.extend(SecretStore(state_dir).load().values())
    with contextlib.suppress(OSError):
        found.append((state_dir / KEY_NAME).read_bytes())
    return found


def _from_loaded(config_path: str) -> dict[str, bytes]:
    """status.json and outbox statistics, when the config is valid enough to find them."""
    from gateway.config import load_config
    from gateway.core import ConfigError
    from gateway.diagnostics.outbox import outbox_stats

    out: dict[str, bytes] = {}
    try:
        loaded = load_config(config_path, check_files=False)
    except ConfigError:
        return {"status-NOT-INCLUDED.txt": b"the config is not valid: status and outbox not located\n"}
    try:
        out["status.json"] = loaded.status_path.read_bytes()
    except OSError as exc:
        out["status-NOT-INCLUDED.txt"] = f"no status file at {loaded.status_path}: {exc.strerror}\n".encode()
    try:
        out["outbox.json"] = _json(outbox_stats(str(loaded.outbox_path)))
    except Exception as exc:  # a missing or corrupt outbox is itself worth reporting
        out["outbox-NOT-INCLUDED.txt"] = f"{loaded.outbox_path}: {exc}\n".encode()
    return out


def versions() -> dict[str, Any]:
    from gateway.diagnostics.ble import bluez_version

    packages: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    info: dict[str, Any] = {
        "lintel": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": packages,
        "bluez": bluez_version(),
    }
    for key, file in (("os", "/etc/os-release"), ("board", "/proc/device-tree/model")):
        try:
            text = Path(file).read_text(errors="replace").replace("\0", "")
        except OSError:
            continue
        info[key] = next(
            (ln.split("=", 1)[1].strip('"') for ln in text.splitlines() if ln.startswith("PRETTY_NAME=")),
            text.strip(),
        )
    return info


def journal() -> bytes:
    if shutil.which("journalctl") is None:
        return b"no systemd journal on this machine (journalctl not found): no logs included\n"
    try:
        out = subprocess.run(
            ["journalctl", "-u", "lintel", "-n", str(LOG_LINES), "--no-pager", "-o", "short-iso"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"journalctl failed: {exc}\n".encode()
    if out.returncode != 0:
        return b"journalctl -u lintel failed: " + out.stderr[-2000:] + b"\n"
    return out.stdout or b"the journal has no lines from the lintel unit\n"


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=1, default=str) + "\n").encode()


def _readme(names: list[str]) -> str:
    return (
        f"Lintel support bundle, made {time.strftime('%Y-%m-%d %H:%M:%S %z')} by lintel {__version__}.\n"
        "Files: " + ", ".join(names) + ".\n"
        "Secrets (passwords, keys, bindkeys, credentials in URLs) were replaced by <redacted>;\n"
        "files the config names were not copied. No face templates, pictures or outbox messages.\n"
    )


def write_tar(out: Path, folder: str, members: dict[str, bytes]) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w:gz") as tar:
        now = time.time()
        for name, data in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mtime, info.mode = len(data), now, 0o600
            tar.addfile(info, io.BytesIO(data))
    err_console.print(f"{len(members)} files in the bundle", highlight=False)
