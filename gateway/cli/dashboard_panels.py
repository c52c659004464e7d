"""The panels of the building at a glance (gateway/cli/dashboard.py lays them out on one screen).

Each panel is built from one part of a `GatewayReport` (devices, a lane's report, the uplink and
outbox) as a title, a one-line summary and detail lines in rich markup, problems (offline, open,
refused, faults) first so they are the last to give way when the screen is short. Every value that
comes from a device or a config (ids, names, errors) is escaped: it is data, never markup.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape

from gateway.cli.output import human_bytes
from gateway.core.devices import DeviceReport, PointValue, unit_of
from gateway.core.durations import for_people
from gateway.runtime.report import GatewayReport
from gateway.upstream.device_points import CAMERA_POINTS, METER_POINTS, SENSOR_POINTS


@dataclass(slots=True)
class Panel:
    title: str
    summary: str
    lines: list[str] = field(default_factory=list)  # rich markup; problems first
    keep: int = -1  # detail lines kept when space is short (-1: all)

    def rendered(self) -> list[str]:
        keep = len(self.lines) if self.keep < 0 else self.keep
        more = [f"  [dim]… +{len(self.lines) - keep} more[/]"] if 0 < keep < len(self.lines) else []
        head = f"[bold cyan]{self.title}[/] {self.summary}"
        return [head, *self.lines[:keep], *more]


@dataclass(frozen=True, slots=True)
class Decision:
    """A face entrance's decision, as the demo observes it (`access_granted`/`denied`/`lockout`)."""

    entrance: str
    kind: str
    ts_ms: int
    who: str | None


def clock(ms: int | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000)) if ms else "never"


def age(seconds: float) -> str:
    return for_people(seconds, compact=True)


def show(p: PointValue) -> str:
    """A point for people: its value at its precision with its unit (door_open: OPEN/closed)."""
    if isinstance(p.value, bool):
        if p.name == "door_open":
            return "[yellow]OPEN[/]" if p.value else "closed"
        return f"{p.name} {'on' if p.value else 'off'}"
    _, decimals = unit_of(p.name)
    if isinstance(p.value, float) and decimals is not None:
        text = f"{p.value:.{decimals}f}"
    else:
        text = escape(str(p.value))
    return f"{text} {p.unit}" if p.unit else f"{p.name.replace('_', ' ')} {text}"


# On site a sensor line also shows the radio's signal: an installer places sensors by it.
SITE_SENSOR_POINTS = (*SENSOR_POINTS, ("rssi_dbm",))


def key_points(d: DeviceReport, limit: int = 3) -> list[str]:
    """The few points that say most about a device, shown (a meter: power, energy, volume...)."""
    groups = {"meter": METER_POINTS, "sensor": SITE_SENSOR_POINTS, "camera": CAMERA_POINTS}[d.kind]
    by_name = {p.name: p for p in d.points}
    picked = [next((by_name[n] for n in group if n in by_name), None) for group in groups]
    return [show(p) for p in picked if p is not None][:limit]


def _offline(d: DeviceReport, now_ms: int) -> str:
    since = d.offline_since_ms or d.last_seen_ms
    when = f" since {clock(since)}" if since else ""
    ago_s = f" ({age((now_ms - since) / 1000)})" if since else ""
    return f"[bold red]{escape(d.device_id)} OFFLINE{when}{ago_s}[/]"


def meters_panel(devices: list[DeviceReport], now_ms: int) -> Panel:
    meters = [d for d in devices if d.kind == "meter"]
    offline = [d for d in meters if d.online is False]
    summary = f"{len(meters) - len(offline)}/{len(meters)} online"
    if offline:
        summary += f", [bold red]{len(offline)} OFFLINE[/]"
    lines = [_offline(d, now_ms) for d in offline]
    for d in meters:
        if d.online is False:
            continue
        shown = key_points(d)
        errors = d.errors
        text = " ".join(shown) if shown else "[dim]waiting for a first answer[/]"
        warn = f" [yellow]{errors} err[/]" if errors else ""
        lines.append(f"{escape(d.device_id):<12} {text}{warn}")
    return Panel("METERS", summary, lines)


def sensors_panel(devices: list[DeviceReport], doors: Any, now_ms: int) -> Panel:
    sensors = [d for d in devices if d.kind == "sensor"]
    offline = [d for d in sensors if d.online is False]
    is_open = [d for d in sensors if any(p.name == "door_open" and p.value is True for p in d.points)]
    summary = f"{len(sensors)} ({len(is_open)} open)"
    if offline:
        summary += f", [bold red]{len(offline)} OFFLINE[/]"
    lines: list[str] = []
    for door in doors.doors if doors is not None else ():
        colour = "green" if door.relay == "released" else ("yellow" if door.relay == "energised" else "red")
        fault = f" [red]{escape(door.fault)}[/]" if door.fault else ""
        lines.append(f"{escape(door.id):<12} [{colour}]relay {door.relay}[/], {door.pulses} pulses{fault}")
    problems = [_offline(d, now_ms) for d in offline]
    fine: list[str] = []
    for d in sensors:
        if d.online is False:
            continue
        by_name = {p.name: p for p in d.points}
        parts = [show(by_name[n]) for n in ("door_open", "temperature_c", "battery_pct") if n in by_name]
        bad = d.counters.get("decrypt_failed", 0)
        refused = d.counters.get("refused", 0)
        if bad:
            parts.append(f"[red]{bad} undecryptable[/]")
        if refused:
            parts.append(f"[yellow]{refused} refused[/]")
        if d.online is None:
            parts.append("[dim]not heard yet[/]")
        line = f"{escape(d.device_id):<12} {' '.join(parts)}"
        (problems if bad or refused or d in is_open else fine).append(line)
    return Panel("DOORS & SENSORS", summary, problems + lines + fine)


def fire_panel(lanes: Any, cameras: dict[str, DeviceReport], unavailable: str | None) -> Panel:
    if unavailable is not None:
        return Panel("FIRE LANES", "[bold red]NOT RUNNING[/]", [f"[red]{escape(unavailable)}[/]"])
    if lanes is None:
        return Panel("FIRE LANES", "[dim]none configured[/]")
    violations = sum(1 for lane in lanes.lanes if lane.state == "violation")
    summary = f"{len(lanes.lanes)} lanes" + (f", [bold red]{violations} VIOLATION[/]" if violations else "")
    colours = {"violation": "bold red", "unknown": "yellow", "parked": "yellow", "candidate": "yellow"}
    lines = []
    for lane in sorted(lanes.lanes, key=lambda x: x.state != "violation"):
        colour = colours.get(lane.state, "green")
        dwell = f" {lane.dwell_s}s" if lane.dwell_s is not None else ""
        lines.append(
            f"{escape(lane.lane)} [{colour}]{lane.state.upper()}{dwell}[/] {_camera(cameras, lane.camera)}"
        )
    return Panel("FIRE LANES", summary, lines)


def _camera(cameras: dict[str, DeviceReport], camera_id: str) -> str:
    cam = cameras.get(camera_id)
    if cam is None or cam.online is None:
        return f"[dim]{escape(camera_id)}[/]"
    if cam.online is False:
        return f"[bold red]{escape(camera_id)} OFFLINE[/]"
    fps = next((show(p) for p in cam.points if p.name == "fps"), "[green]ok[/]")
    return f"{escape(camera_id)} {fps}"


def faces_panel(
    faces: Any, cameras: dict[str, DeviceReport], unavailable: str | None, decisions: Sequence[Decision]
) -> Panel:
    if unavailable is not None:
        return Panel("FACE ENTRANCES", "[bold red]NOT RUNNING[/]", [f"[red]{escape(unavailable)}[/]"])
    if faces is None:
        return Panel("FACE ENTRANCES", "[dim]none configured[/]")
    lines = []
    seen = list(decisions)
    for e in faces.entrances:
        state = f"{e.granted} in, {e.denied} refused"
        if e.locked:
            state = f"[bold red]LOCKED OUT[/] {state}"
        elif not e.camera_online:
            state = f"[bold red]{escape(e.camera)} OFFLINE[/] {state}"
        lines.append(f"{escape(e.id)} → {escape(e.door)}: {state}")
        # status.json carries an entrance's last decision once the face lane reports it (the demo
        # passes the decisions it observed instead)
        last_ms = getattr(e, "last_decision_ms", None)
        if not decisions and last_ms:
            kind = "access_granted" if getattr(e, "last_granted", False) else "access_denied"
            seen.append(Decision(e.id, kind, last_ms, getattr(e, "last_reason", None)))
    colours = {"access_granted": "green", "access_denied": "yellow", "access_lockout": "bold red"}
    for d in sorted(seen, key=lambda d: d.ts_ms)[-2:][::-1]:
        what = d.kind.removeprefix("access_")
        who = f" {escape(d.who)}" if d.who else ""
        lines.append(f"  {clock(d.ts_ms)} [{colours.get(d.kind, 'white')}]{what}[/]{who}")
    return Panel("FACE ENTRANCES", f"{faces.residents} residents", lines)


def care_panel(care: Any) -> Panel:
    if care is None:
        return Panel("CARE", "[dim]none configured[/]")
    missing = [h for h in care.households if h.missing_data]
    lines = [f"[yellow]{escape(h.id)}: no data from {escape(', '.join(h.missing_data))}[/]" for h in missing]
    lines += [f"{escape(h.id)} [green]ok[/]" for h in care.households if not h.missing_data]
    return Panel("CARE", f"{len(care.households)} households", lines)


def uplink_panel(report: GatewayReport, oldest_ms: int | None, now_ms: int) -> Panel:
    up, ob = report.uplink, report.outbox
    colour = {"connected": "green", "disabled": "dim"}.get(up.state, "yellow")
    backlog = sum(dataclass_values(ob.rows))
    summary = f"[{colour}]{up.state}[/], backlog {backlog}"
    oldest = f", oldest {age((now_ms - oldest_ms) / 1000)}" if oldest_ms and backlog else ""
    lines = [f"{backlog} msgs, {human_bytes(sum(dataclass_values(ob.bytes)))}{oldest}"]
    if up.state != "disabled":
        lines.append(f"sent {up.sent}, acked {up.acked}, in flight {up.inflight}")
        spb = report.sparkplug
        if spb:
            lines.append(f"sparkplug {escape(spb.state)}, sent {spb.sent}")
    else:
        lines.append("[dim]no broker: buffering locally[/]")
    dropped = sum(ob.dropped.values())
    if dropped:
        lines.insert(0, f"[yellow]dropped {dropped} records[/]")
    if ob.degraded:
        lines.insert(0, f"[red]{escape(ob.degraded)}[/]")
    if up.last_error and up.state != "connected":
        lines.append(f"[red]{escape(up.last_error)}[/]")
    return Panel("UPLINK/OUTBOX", summary, lines)


def dataclass_values(counts: Any) -> list[int]:
    return [counts.telemetry, counts.state, counts.event, counts.alarm]
