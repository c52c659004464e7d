"""One building's page, `/gateway/<id>`: the picture `lintel status --watch` gives on site, from
what the fleet stores (the gateway's newest `stats`, its births, alarms, events and loss)."""

from __future__ import annotations

from typing import Any

import psycopg

from fleet import queries
from fleet.pages import ago, e, online, page, render_alarms


def render_gateway(conn: psycopg.Connection[Any], gateway_id: str, csrf: str, can_ack: bool) -> bytes | None:
    gw = queries.gateway(conn, gateway_id)
    if gw is None:
        return None
    stats = gw.get("stats") or {}
    outbox = stats.get("outbox") or {}
    loss = queries.loss(conn, gateway_id)
    parts = [
        f"<p id='summary'>Building <b>{e(gw['site'])}</b> · {online(gw['online'])}"
        f" · version {e(gw['version'])}"
        f" · config {e((gw['config_sha256'] or '—')[:12])} · up {e(stats.get('uptime_s', '—'))} s"
        f" · boot reason {e(gw['boot_reason'])} · restarts seen {e(gw['restarts'])}</p>",
        "<h2>Devices</h2><table id='devices'><tr><th>Device</th><th>Kind</th><th>Source</th><th>State</th>"
        "<th>Last seen</th><th>Errors</th><th>Last error</th></tr>",
    ]
    for d in queries.devices(conn, gateway_id):
        parts.append(
            f"<tr><td>{e(d['device_id'])}</td><td>{e(d['kind'])}</td><td>{e(d['source_id'])}</td>"
            f"<td>{online(d['online'])}</td><td>{e(ago(d['last_seen_ms']))}</td><td>{e(d['errors'])}</td>"
            f"<td>{e(d['last_error'] or '')}</td></tr>"
        )
    parts.append("</table><h2>Alarms</h2>")
    parts.append(
        render_alarms(queries.alarms(conn, gateway_id), csrf, "", can_ack, back=f"/gateway/{gateway_id}")
    )
    parts.append(
        "<h2>Delivery</h2><table id='loss'>"
        f"<tr><th>Messages received</th><td>{loss['received']}"
        f" (seq {e(loss['first_seq'])}–{e(loss['last_seq'])})</td></tr>"
        f"<tr><th>Missing seqs</th><td>{loss['missing']}</td></tr>"
        f"<tr><th>Lost with a replaced outbox</th><td>{loss['lost_with_replaced_outbox']}</td></tr>"
        "<tr><th>Dropped (gateway's own count, records)</th>"
        f"<td>{e(loss['dropped_counted'] or 'none')}</td></tr>"
        f"<tr><th>Unexplained</th><td>{loss['unexplained']}</td></tr>"
        f"<tr><th>Outbox now</th><td>{e(outbox.get('rows', '—'))}</td></tr></table>"
        "<h2>Recent events</h2><table id='events'><tr><th>seq</th><th>When</th><th>Source</th><th>Kind</th>"
        "<th>Severity</th></tr>"
    )
    for ev in queries.recent_events(conn, gateway_id):
        parts.append(
            f"<tr><td>{ev['seq']}</td><td>{e(ago(ev['ts_ms']))}</td><td>{e(ev['source_id'])}</td>"
            f"<td>{e(ev['kind'])}</td><td>{e(ev['severity'])}</td></tr>"
        )
    parts.append("</table>")
    return page(f"Gateway {gateway_id}", "".join(parts))
