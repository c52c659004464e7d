"""Serial ports and Modbus meters: is the adapter there, may the service use it, who holds it, and
does each meter answer one short read.

With the gateway running, a serial line is the gateway's: a second master on one RS-485 line garbles
both, so the meters on it are not read directly (a ⚠ says so and shows what the gateway reports);
the port checks only look (stat, /proc) and never open it.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from drivers.modbus.bus import Bus, BusDown, RequestFailed
from drivers.modbus.config import MeterConfig, ModbusBusConfig
from gateway.diagnostics.context import Context
from gateway.diagnostics.report import Finding, Level, fail, ok, warn


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int
    command: str


def holders(device: str, proc: Path, skip: int | None = None) -> tuple[list[Holder], bool]:
    """Processes with `device` open (its real path, as /proc/*/fd links show it), and whether some
    processes could not be inspected (not root). A pseudo-terminal's creator (it holds the master
    side too: socat, a serial-server bridge) provides the port rather than competing for it, and is
    not counted."""
    target = os.path.realpath(device)
    pty_index = target.removeprefix("/dev/pts/") if target.startswith("/dev/pts/") else None
    found: list[Holder] = []
    hidden = False
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == skip:
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except PermissionError:
            hidden = True
            continue
        except OSError:
            continue  # the process ended while we looked
        links = {}
        for fd in fds:
            try:
                links[fd.name] = os.readlink(fd)
            except OSError:
                continue
        if target in links.values() and not (pty_index and _holds_master(entry, links, pty_index)):
            found.append(Holder(int(entry.name), _command(entry)))
    return found, hidden


def _holds_master(entry: Path, links: dict[str, str], index: str) -> bool:
    for fd, link in links.items():
        if link in ("/dev/ptmx", "/dev/pts/ptmx"):
            try:
                info = (entry / "fdinfo" / fd).read_text()
            except OSError:
                continue
            if f"tty-index:\t{index}\n" in info:
                return True
    return False


def _command(entry: Path) -> str:
    try:
        args = (entry / "cmdline").read_bytes().split(b"\0")
        return " ".join(a.decode(errors="replace") for a in args if a)[:120] or entry.name
    except OSError:
        return "?"


def user_can_use(user: str, st: os.stat_result) -> bool:
    """Whether `user` may read and write a device with this owner, group and mode."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return False
    if pw.pw_uid == 0:
        return True
    mode = st.st_mode
    if st.st_uid == pw.pw_uid:
        return mode & 0o600 == 0o600
    groups = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    if st.st_gid in groups:
        return mode & 0o060 == 0o060
    return mode & 0o006 == 0o006


def _names(st: os.stat_result) -> tuple[str, str]:
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return owner, group


def _serial_buses(ctx: Context) -> list[ModbusBusConfig]:
    assert ctx.loaded is not None
    return [s for s in ctx.loaded.config.sources if isinstance(s, ModbusBusConfig) and s.enabled]


def check_port(ctx: Context, device: str, user: str) -> list[Finding]:
    """Present, usable by the service user, and not held by another program."""
    check = f"serial.{device}"
    if not os.path.exists(device):
        adapters = sorted(str(p) for p in Path("/dev/serial/by-id").glob("*")) or ["none found"]
        return [
            fail(
                check,
                f"serial port {device} is not there",
                "plug in the USB RS-485 adapter (or reseat it); adapters seen now: "
                + ", ".join(adapters)
                + " - if it has another name, put that name in the bus's endpoint",
            )
        ]
    st = os.stat(device)
    owner, group = _names(st)
    findings: list[Finding] = []
    if not user_can_use(user, st):
        mode = stat.S_IMODE(st.st_mode)
        findings.append(
            fail(
                check,
                f"the service user '{user}' cannot read and write {device} "
                f"(owner {owner}, group {group}, mode {mode:o})",
                f"add the user to the port's group: `sudo usermod -aG {group} {user}` and restart the "
                "service (serial adapters belong to group dialout on Debian)",
            )
        )
    daemon_pid = ctx.daemon.pid if ctx.daemon else None
    held, hidden = holders(device, ctx.proc, skip=os.getpid())
    others = [h for h in held if h.pid != daemon_pid]
    if others:
        listing = "; ".join(f"pid {h.pid} ({h.command})" for h in others)
        findings.append(
            fail(
                check,
                f"{device} is held by another program: {listing}",
                f"stop it (`sudo kill {others[0].pid}`, or close minicom/screen/a second gateway): two "
                "programs on one RS-485 line garble each other's frames",
            )
        )
    if findings:
        return findings
    note = " (some processes could not be inspected: run doctor with sudo to be sure)" if hidden else ""
    user_note = f"usable by '{user}' (group {group})"
    if daemon_pid in {h.pid for h in held}:
        return [ok(check, f"{device} is present, {user_note}, in use by the running gateway")]
    return [ok(check, f"{device} is present, {user_note}, free{note}")]


def check_serial_and_meters(ctx: Context, user: str) -> list[Finding]:
    findings: list[Finding] = []
    port_ok: dict[str, bool] = {}
    for bus in _serial_buses(ctx):
        ep = bus.parsed_endpoint
        if ep.kind == "rtu" and ep.path not in port_ok:
            port = check_port(ctx, ep.path, user)
            findings += port
            port_ok[ep.path] = all(f.level != Level.FAIL for f in port)
    for bus in _serial_buses(ctx):
        findings += _meters(ctx, bus, port_ok)
    return findings


def _meters(ctx: Context, bus: ModbusBusConfig, port_ok: dict[str, bool]) -> list[Finding]:
    ep = bus.parsed_endpoint
    meters = [m for m in bus.meters if m.enabled]
    names = ", ".join(m.id for m in meters)
    if ctx.daemon is not None and ep.serial_line:
        component = next(
            (c for c in ctx.daemon.status.get("components", []) if c.get("name") == bus.id), None
        )
        reported = ""
        if component:
            reported = f"; the gateway reports the bus {component.get('state')}"
            if component.get("last_error"):
                reported += f", last error: {component['last_error']}"
        return [
            warn(
                f"meters.{bus.id}",
                f"{names} not read directly: the running gateway owns {ep}{reported}",
                "per-meter state is in `lintel status`; to read the meters here, stop the gateway first "
                "(`sudo systemctl stop lintel`) and run doctor again",
            )
        ]
    if ep.kind == "rtu" and not port_ok.get(ep.path, False):
        return [
            warn(f"meters.{bus.id}", f"{names} not read: the serial port is not usable", "fix the port first")
        ]
    return asyncio.run(_read_meters(bus, ctx.timeout_s))


async def _read_meters(bus: ModbusBusConfig, timeout_s: float) -> list[Finding]:
    line = Bus(bus.parsed_endpoint, turnaround_s=bus.turnaround_ms / 1000, backstop_timeout_s=timeout_s)
    try:
        await line.open()
    except BusDown as exc:
        return [
            fail(
                f"meters.{bus.id}",
                f"cannot open {bus.parsed_endpoint}: {exc}",
                "for a TCP gateway check its address and power; for a serial port see the port check",
            )
        ]
    findings: list[Finding] = []
    try:
        for meter in (m for m in bus.meters if m.enabled):
            findings.append(await _read_one(line, bus, meter))
    finally:
        line.close()
    return findings


async def _read_one(line: Bus, bus: ModbusBusConfig, meter: MeterConfig) -> Finding:
    check = f"meter.{meter.id}"
    spec = meter.resolved_points()[0].spec
    timeout_s = (meter.timeout_ms or bus.timeout_ms) / 1000
    where = f"unit {meter.unit} on {bus.parsed_endpoint}"
    try:
        await line.read(meter.unit, spec.function, spec.address, spec.size, timeout_s=timeout_s, retries=1)
    except RequestFailed as exc:
        if exc.reason == "exception" and exc.code not in (10, 11):
            return fail(
                check,
                f"{meter.id} ({where}) answers but refuses {spec.name} at register {spec.address}: {exc}",
                f"the meter is not a {meter.profile or 'meter with these registers'}: check its model "
                "against the profile (`lintel modbus profiles`)",
            )
        if exc.reason == "bad_frame":
            return fail(
                check,
                f"{meter.id} ({where}) answers with garbled frames: {exc}",
                "check the baud rate and parity against the meter's settings, the A/B wiring, the "
                "termination resistor at the line's end, and that no other master is on the line",
            )
        return fail(
            check,
            f"{meter.id} ({where}) does not answer ({exc})",
            f"check the meter has power, its Modbus address is {meter.unit} and its baud rate/parity "
            f"match the endpoint, and the A/B wires (try swapping them); `lintel modbus scan` lists "
            "the units that answer",
        )
    return ok(check, f"{meter.id} ({where}) answered: {spec.name} read")
