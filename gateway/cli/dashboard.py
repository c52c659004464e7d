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
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gateway.cli.dashboard_panels import (
    Decision,
    Panel,
    age,
    care_panel,
    clock,
    faces_panel,
    fire_panel,
    meters_panel,
    sensors_panel,
    uplink_panel,
)
from gateway.runtime.report import GatewayReport

TITLES = ("ALARMS", "METERS", "DOORS & SENSORS", "FIRE LANES", "FACE ENTRANCES", "CARE", "UPLINK/OUTBOX")
LEFT_WIDTH = 42  # meters' lines are the longest; the right column gets the rest


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
