"""A building at a glance: one screen of panels, rendered from a `GatewayReport`.

Used live by `lintel demo` and by `lintel status --watch` (which reads status.json each second).
The screen always fits the terminal (80×24 at the least): open alarms come first and are never
dropped (when they are many they are packed into columns); the other panels give way first, each
keeping its title line with a one-line summary, and problems (offline, open, refused) sort first
so they are the last lines to go.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gateway.cli.output import human_bytes
from gateway.core.devices import DeviceReport, PointValue, unit_of
from gateway.core.durations import for_people
from gateway.runtime.report import GatewayReport
from gateway.upstream.device_points import CAMERA_POINTS, METER_POINTS, SENSOR_POINTS

TITLES = ("ALARMS", "METERS", "DOORS & SENSORS", "FIRE LANES", "FACE ENTRANCES", "CARE", "UPLINK/OUTBOX")
LEFT_WIDTH = 42  # meters' lines are the longest; the right column gets the rest


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


def fit(panels: list[Panel], rows: int) -> list[str]:
    """The panels' lines in at most `rows` (titles always stay): the longest panel gives a line
    first, as a '… +N more' line, then its last detail lines go altogether."""
    for panel in panels:
        panel.keep = -1
    while sum(len(p.rendered()) for p in panels) > rows:
        candidates = [p for p in panels if len(p.rendered()) > 1]
        if not candidates:
            break
        panel = max(candidates, key=lambda p: len(p.rendered()))
        before = len(panel.rendered())
        keep = len(panel.lines) if panel.keep < 0 else panel.keep
        while keep > 0 and len(panel.rendered()) >= before:
            keep -= 1
            panel.keep = keep
    return [line for p in panels for line in p.rendered()]


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


def lane_report(report: GatewayReport, name: str) -> Any:
    """A lane's report in its lane module's type (None when the lane is not in the report)."""
    from gateway.config.lane_registry import read_report

    body = report.lanes.get(name)
    return None if body is None else read_report(name, body)


def alarm_lines(report: GatewayReport, now_ms: int, rows: int, width: int) -> list[Text]:
    """Every open alarm, oldest first, one per cell; packed into as many columns as it takes to fit
    `rows`. An alarm's id is never cut: only its description gives way."""
    late_s = max(0.0, (now_ms - report.written_ms) / 1000)
    alarms = sorted(report.alarms, key=lambda a: a.opened_ms)
    columns = max(1, math.ceil(len(alarms) / max(rows, 1)))
    widest_id = max((len(a.alarm_id) + 2 for a in alarms), default=0)
    # Room for every id: past ~270 alarms at 80×24 the columns stop at what the width holds and
    # the last ids are cut (the title still counts them all).
    cell_width = max(width // columns, widest_id)
    per_column = math.ceil(len(alarms) / columns) if alarms else 0
    lines = []
    for row in range(per_column):
        line = Text(no_wrap=True)
        for col in range(columns):
            at = col * per_column + row
            if at >= len(alarms):
                break
            a = alarms[at]
            cell = Text(f"#{a.alarm_id}", style="bold red")
            acked = " acked" if a.acked else ""
            tail = Text(f" {age(a.open_s + late_s)} {a.kind} {a.source_id}{acked}")
            tail.truncate(max(cell_width - len(cell) - 1, 0), overflow="ellipsis")
            cell.append_text(tail)
            if col < columns - 1:
                cell.truncate(cell_width, pad=True)
            line.append_text(cell)
        lines.append(line)
    return lines


def render(
    report: GatewayReport,
    *,
    width: int = 80,
    height: int = 24,
    now_ms: int | None = None,
    decisions: Sequence[Decision] = (),
    oldest_ms: int | None = None,
    header_note: str = "",
    footer: str = "",
) -> Group:
    """The whole screen for `report`, in at most `height` rows of `width` columns."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    state_colour = "green" if report.state == "running" else "yellow"
    header = (
        f"[bold]{escape(report.site)}/{escape(report.gateway_id)}[/] lintel {report.version} "
        f"[{state_colour}]{report.state}[/] up {age(report.uptime_s)} {clock(now_ms)}"
        + (f" {header_note}" if header_note else "")
    )
    devices = list(report.devices)
    cameras = {d.device_id: d for d in devices if d.kind == "camera"}
    left = [meters_panel(devices, now_ms), sensors_panel(devices, lane_report(report, "doors"), now_ms)]
    right = [
        fire_panel(lane_report(report, "fire_lanes"), cameras, report.unavailable.get("fire_lanes")),
        faces_panel(
            lane_report(report, "face_access"), cameras, report.unavailable.get("face_access"), decisions
        ),
        care_panel(lane_report(report, "care")),
        uplink_panel(report, oldest_ms, now_ms),
    ]
    footer_rows = len(footer.splitlines()) if footer else 0
    grid_min = max(len(left), len(right))
    alarm_rows = max(1, height - 1 - footer_rows - 1 - grid_min)  # header, alarms title, footer, titles
    alarms = alarm_lines(report, now_ms, alarm_rows, width)
    title = (
        f"[bold cyan]ALARMS[/] {len(report.alarms)} open"
        if alarms
        else "[bold cyan]ALARMS[/] [green]none open[/]"
    )
    rows = max(grid_min, height - 1 - footer_rows - 1 - len(alarms))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=LEFT_WIDTH, no_wrap=True, overflow="ellipsis")
    grid.add_column(width=width - LEFT_WIDTH - 1, no_wrap=True, overflow="ellipsis")
    grid.add_row(Text.from_markup("\n".join(fit(left, rows))), Text.from_markup("\n".join(fit(right, rows))))
    parts: list[Any] = [_line(header), _line(title)]
    parts += alarms
    parts.append(grid)
    if footer:
        parts += [_line(line) for line in footer.splitlines()]
    return Group(*parts)


def _line(markup: str) -> Text:
    text = Text.from_markup(markup, overflow="ellipsis")
    text.no_wrap = True
    return text


def outbox_oldest_ms(path: Path) -> int | None:
    """When the oldest message still waiting in the outbox was created (read-only, cheap: the first
    row by seq of each class), or None without a database or a backlog."""
    from gateway.core import Klass
    from gateway.storage.outbox.store import TABLES

    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            found = [
                row[0]
                for klass in Klass
                if (
                    row := conn.execute(
                        f"SELECT created_ms FROM {TABLES[klass]} ORDER BY seq LIMIT 1"
                    ).fetchone()
                )
            ]
        finally:
            conn.close()
    except sqlite3.Error:
        return None  # busy or being replaced: the panel shows the backlog without its age this time
    return min(found) if found else None
