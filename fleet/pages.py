"""The fleet page's HTML: the frame every page shares, the buildings at a glance and the alarms
across buildings. Every value that came from a gateway goes through `e()`: gateways are not trusted
to write HTML."""

from __future__ import annotations

import html
import time
from typing import Any
from urllib.parse import quote

STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left}th{background:#f4f4f4}
.on,.ok{color:#070}.problem{color:#b00;font-weight:bold}.panel{margin-top:1.2em}
.on{color:#070}.off{color:#b00;font-weight:bold}.open{color:#b00;font-weight:bold}.acknowledged{color:#a60}
nav a{margin-right:1em}.flash{background:#eef;padding:.5em}"""


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def ago(ms: int | None) -> str:
    if not ms:
        return "—"
    s = max(0, time.time() - ms / 1000)
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else f"{s / 3600:.1f} h ago"


def now_ms() -> int:
    return int(time.time() * 1000)


def page(title: str, body: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)} · Lintel fleet</title>"
        f"<style>{STYLE}</style></head><body><nav><a href='/'>Buildings</a><a href='/alarms'>Alarms</a></nav>"
        f"<h1>{e(title)}</h1>{body}</body></html>"
    ).encode()


LOGIN_FORM = (
    "<form method='post' action='/login'>"
    "<label>Token <input type='password' name='token' id='token'></label> "
    "<button type='submit' id='signin'>Sign in</button></form>"
)


def online(value: bool | None) -> str:
    if value is None:
        return "<span>unknown</span>"
    return "<span class='on'>online</span>" if value else "<span class='off'>offline</span>"


def render_overview(rows: list[dict[str, Any]]) -> str:
    out = [
        "<table id='buildings'><tr><th>Building</th><th>Gateway</th><th>Link</th><th>Version</th>"
        "<th>Config</th><th>Open alarms</th><th>Devices offline</th><th>Last stats</th></tr>"
    ]
    for r in rows:
        acked = f" (+{r['alarms_acked']} acknowledged)" if r["alarms_acked"] else ""
        out.append(
            f"<tr data-gateway='{e(r['gateway_id'])}'><td>{e(r['site'])}</td>"
            f"<td><a href='/gateway/{quote(r['gateway_id'])}'>{e(r['gateway_id'])}</a></td>"
            f"<td>{online(r['online'])}</td><td>{e(r['version'] or '—')}</td>"
            f"<td title='{e(r['config_sha256'])}'>{e((r['config_sha256'] or '—')[:12])}</td>"
            f"<td class='alarms-open'>{r['alarms_open']}{acked}</td>"
            f"<td class='devices-offline'>{r['devices_offline']} of {r['devices']}</td>"
            f"<td>{e(ago(r['stats_ts_ms']))}</td></tr>"
        )
    out.append("</table>")
    if not rows:
        out.append("<p>No gateway has reported yet.</p>")
    return "".join(out)


def render_alarms(
    rows: list[dict[str, Any]], csrf: str, flash: str, can_ack: bool, back: str = "/alarms"
) -> str:
    out = []
    if flash:
        out.append(
            f"<p class='flash' id='flash'>Acknowledgement sent as signed command {e(flash)}; "
            "the alarm shows acknowledged once its gateway reports it.</p>"
        )
    out.append(
        "<table id='alarms'><tr><th>Building</th><th>Gateway</th><th>Alarm</th><th>Kind</th><th>Source</th>"
        "<th>Opened</th><th>State</th><th></th></tr>"
    )
    for a in rows:
        action = ""
        if a["state"] == "open" and can_ack:
            action = (
                f"<form method='post' action='/alarms/ack'>"
                f"<input type='hidden' name='csrf' value='{e(csrf)}'>"
                f"<input type='hidden' name='gateway_id' value='{e(a['gateway_id'])}'>"
                f"<input type='hidden' name='alarm_id' value='{e(a['alarm_id'])}'>"
                f"<input type='hidden' name='back' value='{e(back)}'>"
                f"<button type='submit' class='ack'>Acknowledge</button></form>"
            )
        if a["ack_command"] and a["state"] == "open":
            action += f" <small>ack {e(a['ack_outcome'])}</small>"
        by = f" by {e(a['acked_by'])}" if a["acked_by"] else ""
        out.append(
            f"<tr data-alarm='{e(a['gateway_id'])}/{e(a['alarm_id'])}'><td>{e(a['site'])}</td>"
            f"<td><a href='/gateway/{quote(a['gateway_id'])}'>{e(a['gateway_id'])}</a></td>"
            f"<td>{e(a['alarm_id'])}</td><td>{e(a['kind'])}</td><td>{e(a['source_id'])}</td>"
            f"<td>{e(ago(a['opened_ms']))}</td><td class='state {e(a['state'])}'>{e(a['state'])}{by}</td>"
            f"<td>{action}</td></tr>"
        )
    out.append("</table>")
    if not rows:
        out.append("<p>No open alarms.</p>")
    return "".join(out)
