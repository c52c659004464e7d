"""One building's page, `/gateway/<id>`: the picture `lintel status --watch` gives on site, from
what the fleet stores. The same panels in the same order (gateway/cli/dashboard.py): a header (site,
link, release and any update in progress, config, uptime), ALARMS, METERS, DOORS & SENSORS, FIRE
LANES, FACE ENTRANCES, CARE, UPLINK/OUTBOX (with the gateway's components); then what only the
fleet knows: delivery and loss, recent events. Devices, outbox, uplink, components, release and
config come from the gateway's newest `stats`; lanes too (its `lanes` section, fleet/lane_report.py)
or, from a gateway older than that section, rebuilt from its events and alarms
(fleet/lane_picture.py). Problems sort first. Every value from the gateway is escaped.
"""

from __future__ import annotations

from typing import Any

import psycopg

from fleet import lane_picture, lane_report, queries
from fleet.pages import ago, e, now_ms, online, page, render_alarms
from gateway.core.devices import unit_of
from gateway.upstream.device_points import CAMERA_POINTS, METER_POINTS, SENSOR_POINTS

DAY_MS = 86_400_000
LANE_WINDOW_MS = 7 * DAY_MS  # lanes silent for longer than this do not show
CLASSES = ("telemetry", "state", "event", "alarm")
LANE_PANELS = (
    ("doors", "Door relays"),
    ("fire-lanes", "Fire lanes"),
    ("entrances", "Face entrances"),
    ("care", "Care"),
)
COMPONENT_HEAD = ("Component", "State", "Restarts", "Last error")


def show(point: dict[str, Any]) -> str:
    """A point for people, as the dashboard shows it: its value at its precision, with its unit."""
    name, value = str(point.get("name", "")), point.get("value")
    if isinstance(value, bool):
        if name == "door_open":
            return "OPEN" if value else "closed"
        return f"{name} {'on' if value else 'off'}"
    unit, decimals = unit_of(name)
    text = f"{value:.{decimals}f}" if isinstance(value, float) and decimals is not None else str(value)
    return f"{text} {unit}" if unit else f"{name.replace('_', ' ')} {text}"


def key_points(report: dict[str, Any], groups: tuple[tuple[str, ...], ...]) -> str:
    by_name = {p.get("name"): p for p in report.get("points") or [] if isinstance(p, dict)}
    picked = [next((by_name[n] for n in group if n in by_name), None) for group in groups]
    return " · ".join(show(p) for p in picked if p is not None)


def _table(table_id: str, title: str, summary: str, head: tuple[str, ...], rows: list[str]) -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join(rows) or f"<tr><td colspan='{len(head)}'>none reported</td></tr>"
    return (
        f"<section class='panel'><h2>{title} <small>{summary}</small></h2>"
        f"<table id='{table_id}'><tr>{th}</tr>{body}</table></section>"
    )


def _device_rows(devices: list[dict[str, Any]], groups: tuple[tuple[str, ...], ...]) -> list[str]:
    rows = []
    for d in sorted(devices, key=lambda d: (d["online"] is not False, d["device_id"])):
        report = d.get("report") or {}
        state = online(d["online"])
        if d["online"] is False and d.get("offline_since_ms"):
            state += f" since {e(ago(d['offline_since_ms']))}"
        errors = f"{d['errors']} errors" if d["errors"] else ""
        rows.append(
            f"<tr data-device='{e(d['device_id'])}'><td>{e(d['device_id'])}</td><td>{state}</td>"
            f"<td>{e(key_points(report, groups))}</td><td>{e(errors)}</td>"
            f"<td>{e(d['last_error'] or '')}</td></tr>"
        )
    return rows


def _devices_panels(devices: list[dict[str, Any]]) -> str:
    head = ("Device", "State", "Now", "Errors", "Last error")
    out = []
    for kind, table_id, title, groups in (
        ("meter", "meters", "Meters", METER_POINTS),
        ("sensor", "sensors", "Doors &amp; sensors", SENSOR_POINTS),
        ("camera", "cameras", "Cameras", CAMERA_POINTS),
    ):
        mine = [d for d in devices if d["kind"] == kind]
        down = sum(1 for d in mine if d["online"] is False)
        summary = f"{len(mine) - down}/{len(mine)} online" + (f", {down} OFFLINE" if down else "")
        out.append(_table(table_id, title, summary, head, _device_rows(mine, groups)))
    return "".join(out)


def _lane_panel(table_id: str, title: str, rows: list[lane_picture.LaneRow], source: str) -> str:
    problems = sum(1 for r in rows if r.problem)
    summary = f"{len(rows)} {source}" + (f", {problems} need attention" if problems else "")
    cells = [
        f"<tr data-lane='{e(r.name)}'><td>{e(r.name)}</td>"
        f"<td class='{'problem' if r.problem else 'ok'}'>{e(r.state)}</td><td>{e(r.detail)}</td></tr>"
        for r in rows
    ]
    return _table(table_id, title, summary, ("Name", "State", ""), cells)


def _lane_panels(stats: dict[str, Any], events: list[dict[str, Any]], alarms: list[dict[str, Any]]) -> str:
    """The lane panels from the gateway's own `lanes` report, or rebuilt from its events when it
    publishes none (a gateway older than that section)."""
    lanes = lane_report.reported(stats)
    if lanes is not None:
        panels = (
            lane_report.doors(lanes, alarms),
            lane_report.fire_lanes(lanes, alarms),
            lane_report.entrances(lanes),
            lane_report.households(lanes, alarms),
        )
    else:
        panels = (
            lane_picture.doors(events, alarms),
            lane_picture.fire_lanes(events, alarms),
            lane_picture.entrances(events),
            lane_picture.households(events, alarms),
        )
    source = "reported by the gateway" if lanes is not None else "rebuilt from events"
    return "".join(
        _lane_panel(table_id, title, rows, source)
        for (table_id, title), rows in zip(LANE_PANELS, panels, strict=True)
    )


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if isinstance(v, int))


def _uplink_panel(stats: dict[str, Any]) -> str:
    up, ob = stats.get("uplink") or {}, stats.get("outbox") or {}
    rows, size = ob.get("rows") or {}, ob.get("bytes") or {}
    backlog = sum(v for k, v in rows.items() if k in CLASSES and isinstance(v, int))
    nbytes = sum(v for k, v in size.items() if k in CLASSES and isinstance(v, int))
    dropped = sum(v for v in (ob.get("dropped") or {}).values() if isinstance(v, int))
    pipe, spb = stats.get("pipeline") or {}, stats.get("sparkplug")
    lines = [
        (
            "Uplink",
            f"{up.get('state', '—')}, sent {up.get('sent', 0)}, acked {up.get('acked', 0)},"
            f" in flight {up.get('inflight', 0)}",
        ),
        ("Outbox backlog", f"{backlog} messages, {nbytes} bytes ({_counts(rows) or 'no class reported'})"),
        ("Dropped (records)", f"{dropped} ({_counts(ob.get('dropped') or {})})" if dropped else "none"),
        ("Pipeline", f"accepted {pipe.get('accepted', 0)}, refused {pipe.get('refused', 0)}"),
    ]
    if isinstance(spb, dict):
        lines.append(("Sparkplug", f"{spb.get('state', '—')}, sent {spb.get('sent', 0)}"))
    for bad in ("degraded", "last_error"):
        if ob.get(bad):
            lines.insert(0, (f"Outbox {bad.replace('_', ' ')}", str(ob[bad])))
    if up.get("last_error") and up.get("state") != "connected":
        lines.append(("Uplink error", str(up["last_error"])))
    cells = [f"<tr><th>{k}</th><td>{e(v)}</td></tr>" for k, v in lines]
    comps = sorted(
        (c for c in stats.get("components") or [] if isinstance(c, dict)),
        key=lambda c: (c.get("state") == "running", str(c.get("name"))),
    )
    comp_rows = [
        f"<tr><td>{e(c.get('name'))}</td><td class='{'ok' if c.get('state') == 'running' else 'problem'}'>"
        f"{e(c.get('state'))}</td><td>{e(c.get('restarts', 0))}</td>"
        f"<td>{e(c.get('last_error') or '')}</td></tr>"
        for c in comps
    ]
    summary = f"{up.get('state', '—')}, backlog {backlog}"
    return (
        f"<section class='panel'><h2>Uplink/outbox <small>{e(summary)}</small></h2>"
        f"<table id='uplink'>{''.join(cells)}</table></section>"
        + _table(
            "components",
            "Components",
            f"{len(comps)}",
            ("Component", "State", "Restarts", "Last error"),
            comp_rows,
        )
    )


def _header(gw: dict[str, Any], stats: dict[str, Any]) -> str:
    release, config = stats.get("release") or {}, stats.get("config") or {}
    version = release.get("version") or gw["version"] or "—"
    update = release.get("update") if isinstance(release.get("update"), dict) else None
    update_text = (
        f" · update {e(update.get('from_version'))} → {e(update.get('to_version'))}: {e(update.get('phase'))}"
        if update
        else ""
    )
    origin = config.get("origin") or ("deployment" if config.get("version") else "")
    probation = " (on probation)" if config.get("on_probation") else ""
    sha = config.get("sha256") or gw["config_sha256"] or "—"
    return (
        f"<p id='summary'>Building <b>{e(gw['site'])}</b> · {online(gw['online'])}"
        f" · <span id='release'>lintel {e(version)}</span>{update_text}"
        f" · <span id='config'>config {e(origin)} {e(sha[:12])}{probation}</span>"
        f" · up {e(stats.get('uptime_s', '—'))} s · boot reason {e(gw['boot_reason'])}"
        f" · restarts seen {e(gw['restarts'])} · stats {e(ago(gw['stats_ts_ms']))}</p>"
    )


def _loss_panel(loss: dict[str, Any]) -> str:
    return (
        "<section class='panel'><h2>Delivery</h2><table id='loss'>"
        f"<tr><th>Messages received</th><td>{loss['received']}"
        f" (seq {e(loss['first_seq'])}–{e(loss['last_seq'])})</td></tr>"
        f"<tr><th>Missing seqs</th><td>{loss['missing']}</td></tr>"
        f"<tr><th>Lost with a replaced outbox</th><td>{loss['lost_with_replaced_outbox']}</td></tr>"
        "<tr><th>Dropped (gateway's own count, records)</th>"
        f"<td>{e(loss['dropped_counted'] or 'none')}</td></tr>"
        f"<tr><th>Unexplained</th><td>{loss['unexplained']}</td></tr></table></section>"
    )


def render_gateway(conn: psycopg.Connection[Any], gateway_id: str, csrf: str, can_ack: bool) -> bytes | None:
    gw = queries.gateway(conn, gateway_id)
    if gw is None:
        return None
    stats = gw.get("stats") or {}
    now = now_ms()
    alarms = queries.alarms(conn, gateway_id)
    # the lanes' events only for a gateway that does not report its lanes in `stats`
    events = (
        queries.lane_events(
            conn, gateway_id, lane_picture.LANE_EVENT_KINDS, now - LANE_WINDOW_MS, now - DAY_MS
        )
        if lane_report.reported(stats) is None
        else []
    )
    parts = [
        _header(gw, stats),
        "<section class='panel'><h2>Alarms</h2>",
        render_alarms(alarms, csrf, "", can_ack, back=f"/gateway/{gateway_id}"),
        "</section>",
        _devices_panels(queries.devices(conn, gateway_id, with_report=True)),
        _lane_panels(stats, events, alarms),
        _uplink_panel(stats),
        _loss_panel(queries.loss(conn, gateway_id)),
        "<section class='panel'><h2>Recent events</h2><table id='events'><tr><th>seq</th><th>When</th>"
        "<th>Source</th><th>Kind</th><th>Severity</th></tr>",
    ]
    for ev in queries.recent_events(conn, gateway_id):
        parts.append(
            f"<tr><td>{ev['seq']}</td><td>{e(ago(ev['ts_ms']))}</td><td>{e(ev['source_id'])}</td>"
            f"<td>{e(ev['kind'])}</td><td>{e(ev['severity'])}</td></tr>"
        )
    parts.append("</table></section>")
    return page(f"Gateway {gateway_id}", "".join(parts))
