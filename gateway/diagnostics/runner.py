"""All checks, in the order a technician should fix things: the box, the uplink, the devices."""

from __future__ import annotations

import getpass
import secrets
import time
from collections.abc import Callable
from dataclasses import replace

from gateway.diagnostics.context import Context, Daemon
from gateway.diagnostics.report import Finding, fail
from gateway.diagnostics.system import find_daemon, load, unit_user

Check = Callable[[Context], list[Finding]]


def ping_daemon(ctx: Context, daemon: Daemon) -> Daemon:
    """Ask the running gateway for a `ping` on its control socket (the same router as upstream
    commands: the answer also goes upstream as a command result, which records the visit)."""
    from gateway.runtime.control import SOCKET_NAME, send_local

    assert ctx.loaded is not None
    path = ctx.loaded.runtime_dir / SOCKET_NAME
    envelope = {
        "schema": "lintel.command/1",
        "id": f"doctor-{secrets.token_hex(6)}",
        "command": "ping",
        "ts_ms": ctx.time_ms(),
        "nonce": secrets.token_hex(12),
        "by": "lintel doctor",
    }
    started = time.monotonic()
    try:
        answer = send_local(path, envelope, timeout_s=ctx.timeout_s)
    except PermissionError as exc:
        return replace(daemon, answers=None, socket_error=f"no permission on {path}: {exc.strerror}")
    except (OSError, ValueError) as exc:
        return replace(daemon, answers=False, socket_error=f"{path}: {exc}")
    took = (time.monotonic() - started) * 1000
    if answer.get("outcome") != "ok":
        return replace(
            daemon, answers=False, socket_error=f"ping {answer.get('outcome')}: {answer.get('reason')}"
        )
    return replace(daemon, answers=True, answer_ms=took)


def checks() -> list[Check]:
    from gateway.diagnostics.ble import check_ble
    from gateway.diagnostics.broker import check_broker
    from gateway.diagnostics.cameras import check_cameras
    from gateway.diagnostics.models import check_face_key, check_models
    from gateway.diagnostics.outbox import check_outbox
    from gateway.diagnostics.system import check_clock, check_daemon, check_state_dir, check_unit

    return [
        check_daemon,
        check_clock,
        check_state_dir,
        check_unit,
        check_outbox,
        check_broker,
        _serial,
        check_ble,
        check_cameras,
        check_models,
        check_face_key,
    ]


def _serial(ctx: Context) -> list[Finding]:
    from gateway.diagnostics.serial import check_serial_and_meters

    user = ctx.service_user or unit_user(ctx) or getpass.getuser()
    return check_serial_and_meters(ctx, user)


def run_doctor(ctx: Context, progress: Callable[[str], None] = lambda name: None) -> list[Finding]:
    """Every check's findings. A check that crashes is itself reported (✗ with its error), so one
    broken check never hides the others."""
    loaded, findings = load(ctx.config_path)
    if loaded is None:
        return findings
    ctx = replace(ctx, loaded=loaded)
    if ctx.daemon is None:
        daemon = find_daemon(loaded)
        if daemon is not None:
            ctx = replace(ctx, daemon=ping_daemon(ctx, daemon))
    for check in checks():
        name = check.__name__.removeprefix("check_").lstrip("_")
        progress(name)
        try:
            findings += check(ctx)
        except Exception as exc:  # a bug in one check must not hide the others
            findings.append(
                fail(
                    name,
                    f"the check itself failed: {type(exc).__name__}: {exc}",
                    "report this to Lintel's developers",
                )
            )
    return findings
