"""Checks of the box itself: config file, running daemon, state folder, clock, systemd unit."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from gateway.config import LoadedConfig, load_config
from gateway.config.secret_files import secret_file_warnings
from gateway.core import ConfigError
from gateway.core.clock import clock_is_set
from gateway.diagnostics.context import Context, Daemon
from gateway.diagnostics.report import Finding, fail, ok, warn
from gateway.runtime.status_file import read_status

MIB = 1024 * 1024


def load(path: str) -> tuple[LoadedConfig | None, list[Finding]]:
    """The config (validated; files checked), or None with a ✗ listing every problem. A config whose
    only problems are files it names is still returned, so the other checks can run."""
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        problems = "; ".join(str(p) for p in exc.problems)
        finding = fail(
            "config",
            f"{path}: {len(exc.problems)} problem(s): {problems}",
            f"correct the config file (`lintel check-config -c {path}` lists each problem with what "
            "would be valid), then restart the gateway",
        )
        try:
            return load_config(path, check_files=False), [finding]
        except ConfigError:
            return None, [finding]
    n = len(loaded.config.sources)
    findings = [ok("config", f"{path} is valid ({n} source(s), sha256 {loaded.sha256[:12]})")]
    for problem in secret_file_warnings(loaded.config, loaded.resolve):
        findings.append(
            warn(f"secret.{problem.path}", f"{problem.got}: {problem.message}", problem.expected or "")
        )
    for problem in loaded.config.renamed:  # an old key still read at its old place
        findings.append(warn(f"config.{problem.path}", problem.message, problem.expected or ""))
    return loaded, findings


def find_daemon(loaded: LoadedConfig) -> Daemon | None:
    """The running gateway of this config, from its status file (fresh, and its pid alive)."""
    status, age = read_status(loaded.status_path, time.time())
    if status is None or age is None:
        return None
    stale_after = max(10.0, loaded.config.runtime.status_interval_s * 3)
    pid = status.get("pid")
    if age > stale_after or status.get("state") == "stopped" or not isinstance(pid, int):
        return None
    if not Path(f"/proc/{pid}").exists():
        return None
    return Daemon(pid=pid, status=status, status_age_s=age, answers=None)


def check_daemon(ctx: Context) -> list[Finding]:
    d = ctx.daemon
    if d is None:
        return [
            warn(
                "daemon",
                "the gateway is not running (no fresh status file): devices are checked directly",
                "start it when the checks below are clean: `sudo systemctl start lintel`",
            )
        ]
    uptime = d.status.get("uptime_s")
    up = f", up {uptime:.0f} s" if isinstance(uptime, int | float) else ""
    if d.answers is False:
        return [
            fail(
                "daemon",
                f"the gateway (pid {d.pid}) writes its status but does not answer on its control socket "
                f"({d.socket_error})",
                "it may be hung: `sudo systemctl restart lintel`, then `journalctl -u lintel -n 50`",
            )
        ]
    if d.answers is None:
        return [
            warn(
                "daemon",
                f"the gateway is running (pid {d.pid}{up}); its control socket was not asked "
                f"({d.socket_error})",
                "run `sudo lintel doctor` to check that it answers",
            )
        ]
    answered = f", answered a ping in {d.answer_ms:.0f} ms" if d.answer_ms is not None else ""
    return [ok("daemon", f"the gateway is running (pid {d.pid}{up}){answered}")]


def check_state_dir(ctx: Context) -> list[Finding]:
    assert ctx.loaded is not None
    state = ctx.loaded.state_dir
    fix_owner = (
        f"give the service its folder: `sudo mkdir -p {state} && sudo chown -R lintel:lintel {state}` "
        "(systemd's StateDirectory=lintel does this for /var/lib/lintel); if the SD card turned "
        "read-only, it is failing: replace it"
    )
    if not state.is_dir():
        parent = next((p for p in state.parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            return [fail("state_dir", f"{state} does not exist and cannot be created", fix_owner)]
        return [
            warn("state_dir", f"{state} does not exist yet", f"it is created at first start; {fix_owner}")
        ]
    probe = state / f".lintel-doctor-{secrets.token_hex(4)}"
    try:
        with open(probe, "wb") as f:
            f.write(b"x")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        who = getpass.getuser()
        if os.geteuid() != 0 and state.stat().st_uid != os.geteuid():
            return [
                warn(
                    "state_dir",
                    f"cannot write in {state} as {who}: {exc.strerror or exc}",
                    "run `sudo lintel doctor` to check it as the service would",
                )
            ]
        return [fail("state_dir", f"cannot write in {state} as {who}: {exc.strerror or exc}", fix_owner)]
    usage = shutil.disk_usage(state)
    outbox = ctx.loaded.config.outbox
    free_mb = usage.free / MIB
    line = f"{state} is writable, {free_mb:,.0f} MiB free of {usage.total / MIB:,.0f} MiB"
    if free_mb < outbox.min_free_disk_mb:
        return [
            fail(
                "state_dir",
                f"{line}: below the floor outbox.min_free_disk_mb = {outbox.min_free_disk_mb:g}, "
                "only alarms are accepted",
                "free disk space (old logs: `sudo journalctl --vacuum-size=50M`), or fit a larger SD card",
            )
        ]
    if free_mb < outbox.min_free_disk_mb + outbox.max_mb:
        return [
            warn(
                "state_dir",
                f"{line}: less than the outbox may use (outbox.max_mb {outbox.max_mb:g} + floor "
                f"{outbox.min_free_disk_mb:g})",
                "free disk space or lower outbox.max_mb, so a long outage cannot fill the disk",
            )
        ]
    return [ok("state_dir", line)]


def check_clock(ctx: Context) -> list[Finding]:
    now_ms = ctx.time_ms()
    shown = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not clock_is_set(now_ms):
        return [
            fail(
                "clock",
                f"the clock is not set (it reads {shown})",
                "the gateway needs the network time: check the network cable and DNS, "
                "`timedatectl timesync-status`, and that UDP port 123 is not blocked; until then TLS "
                "certificates look invalid and commands are refused",
            )
        ]
    synced = ctx.ntp()
    if synced is None:
        return [
            warn(
                "clock",
                f"the clock reads {shown}; whether NTP keeps it right cannot be told here",
                "check with `timedatectl` that 'System clock synchronized' is yes",
            )
        ]
    if not synced:
        return [
            warn(
                "clock",
                f"the clock reads {shown} but is not synchronised by NTP: it drifts",
                "`sudo timedatectl set-ntp true`; check the network and that UDP port 123 is not blocked",
            )
        ]
    return [ok("clock", f"the clock reads {shown}, synchronised by NTP")]


def _systemctl(ctx: Context) -> dict[str, str] | None:
    if shutil.which("systemctl") is None:
        return None
    props = "LoadState,ActiveState,SubState,UnitFileState,Result,ExecMainStatus,NRestarts,User"
    try:
        out = subprocess.run(
            ["systemctl", "show", ctx.unit, "-p", props],
            capture_output=True,
            text=True,
            timeout=ctx.timeout_s,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def check_unit(ctx: Context) -> list[Finding]:
    u = _systemctl(ctx)
    if u is None:
        return [
            warn(
                "systemd",
                "systemd is not running here (a container or chroot?): the unit cannot be checked",
                "on the gateway itself, run `lintel doctor` again",
            )
        ]
    if u.get("LoadState") != "loaded":
        return [
            warn(
                "systemd",
                f"the {ctx.unit} unit is not installed",
                f"install it so the gateway starts at boot: `sudo cp systemd/lintel.service "
                f"/etc/systemd/system/ && sudo systemctl enable --now {ctx.unit}`",
            )
        ]
    state = f"{u.get('ActiveState')} ({u.get('SubState')})"
    restarts = u.get("NRestarts", "0")
    last_exit = u.get("ExecMainStatus", "0")
    if u.get("ActiveState") == "failed" or u.get("Result") not in (None, "success"):
        meaning = " (78: the config is wrong)" if last_exit == "78" else ""
        return [
            fail(
                "systemd",
                f"{ctx.unit} is {state}, result {u.get('Result')}, last exit {last_exit}{meaning}",
                f"read why: `journalctl -u {ctx.unit} -n 50`; fix it, then "
                f"`sudo systemctl restart {ctx.unit}`",
            )
        ]
    found = f"{ctx.unit} is {state}, {restarts} restart(s), last exit {last_exit}"
    if u.get("ActiveState") != "active":
        return [warn("systemd", found, f"start it: `sudo systemctl start {ctx.unit}`")]
    if u.get("UnitFileState") != "enabled":
        return [
            warn("systemd", f"{found}; not enabled", f"`sudo systemctl enable {ctx.unit}` (start at boot)")
        ]
    return [ok("systemd", f"{found}, enabled")]


def unit_user(ctx: Context) -> str | None:
    """The service user the unit runs as (User=), when the unit is installed."""
    u = _systemctl(ctx)
    return (u or {}).get("User") or None
