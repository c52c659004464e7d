"""The read side shared by the operator tools and the web page."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

OPEN_STATES = ("open", "acknowledged")


def _all(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql.encode(), params).fetchall()
    conn.commit()
    return rows


def gateways(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every gateway at a glance: online, version, config, open alarms, devices offline."""
    return _all(
        conn,
        "SELECT g.gateway_id, g.site, g.online, g.version, g.config_sha256, g.boot_reason, g.last_seen,"
        " g.stats_ts_ms, g.restarts,"
        " (SELECT count(*) FROM alarms a WHERE a.gateway_id = g.gateway_id AND a.state = 'open')"
        "   AS alarms_open,"
        " (SELECT count(*) FROM alarms a WHERE a.gateway_id = g.gateway_id AND a.state = 'acknowledged')"
        "   AS alarms_acked,"
        " (SELECT count(*) FROM devices d WHERE d.gateway_id = g.gateway_id) AS devices,"
        " (SELECT count(*) FROM devices d WHERE d.gateway_id = g.gateway_id AND d.online IS FALSE)"
        "   AS devices_offline"
        " FROM gateways g ORDER BY g.site, g.gateway_id",
    )


def gateway(conn: psycopg.Connection[Any], gateway_id: str) -> dict[str, Any] | None:
    rows = _all(conn, "SELECT * FROM gateways WHERE gateway_id = %s", (gateway_id,))
    return rows[0] if rows else None


def alarms(
    conn: psycopg.Connection[Any], gateway_id: str | None = None, include_resolved: bool = False
) -> list[dict[str, Any]]:
    states = ["open", "acknowledged", "resolved"] if include_resolved else list(OPEN_STATES)
    sql = (
        "SELECT a.gateway_id, g.site, a.alarm_id, a.kind, a.source_id, a.state, a.opened_ms, a.acked_ms,"
        " a.acked_by, a.resolved_ms, a.notify,"
        " (SELECT c.id FROM commands c WHERE c.gateway_id = a.gateway_id AND c.command = 'alarm_ack'"
        "   AND c.args->>'alarm_id' = a.alarm_id ORDER BY c.requested_at DESC LIMIT 1) AS ack_command,"
        " (SELECT coalesce(c.outcome, 'sent') || coalesce(': ' || c.code, '') FROM commands c"
        "   WHERE c.gateway_id = a.gateway_id AND c.command = 'alarm_ack'"
        "   AND c.args->>'alarm_id' = a.alarm_id"
        "   ORDER BY c.requested_at DESC LIMIT 1) AS ack_outcome"
        " FROM alarms a JOIN gateways g USING (gateway_id) WHERE a.state = ANY(%s)"
    )
    params: tuple[Any, ...] = (states,)
    if gateway_id is not None:
        sql += " AND a.gateway_id = %s"
        params += (gateway_id,)
    return _all(conn, sql + " ORDER BY a.opened_ms DESC NULLS LAST LIMIT 500", params)


def devices(
    conn: psycopg.Connection[Any], gateway_id: str | None = None, with_report: bool = False
) -> list[dict[str, Any]]:
    """Device health from the newest stats; `with_report` adds each device's whole report (points)."""
    sql = (
        "SELECT d.gateway_id, g.site, d.device_id, d.source_id, d.kind, d.online, d.last_seen_ms,"
        " d.offline_since_ms, d.errors, d.last_error"
        + (", d.report" if with_report else "")
        + " FROM devices d JOIN gateways g USING (gateway_id)"
    )
    if gateway_id is not None:
        return _all(conn, sql + " WHERE d.gateway_id = %s ORDER BY d.device_id", (gateway_id,))
    return _all(conn, sql + " ORDER BY g.site, d.gateway_id, d.device_id")


def recent_events(conn: psycopg.Connection[Any], gateway_id: str, limit: int = 20) -> list[dict[str, Any]]:
    return _all(
        conn,
        "SELECT seq, ts_ms, source_id, kind, severity FROM events WHERE gateway_id = %s"
        " ORDER BY seq DESC LIMIT %s",
        (gateway_id, limit),
    )


def loss(conn: psycopg.Connection[Any], gateway_id: str) -> dict[str, Any]:
    """Per-gateway loss accounting. `missing` seqs between the first and last received are gaps;
    they are told apart as: lost with a replaced outbox (its `outbox_replaced` event's ranges),
    and the rest, which the gateway's own counted drops (`stats` outbox.dropped, in records: a
    dropped telemetry message holds one or more) must cover; `unexplained` is what they cannot.
    Restarts and replaced outboxes come from births; they cause no gap of their own (seq never
    goes backwards). Before issue 28 a gateway with a bridge enabled spends seqs on bridge
    messages too: there only the drop counters, not gaps, tell loss."""
    row = _all(
        conn,
        "SELECT count(*) AS received, min(seq) AS first_seq, max(seq) AS last_seq FROM ledger"
        " WHERE gateway_id = %s",
        (gateway_id,),
    )[0]
    gaps = _all(
        conn,
        "SELECT seq + 1 AS first, next - 1 AS last FROM (SELECT seq, lead(seq) OVER (ORDER BY seq) AS next"
        " FROM ledger WHERE gateway_id = %s) t WHERE next > seq + 1 ORDER BY first LIMIT 1000",
        (gateway_id,),
    )
    gw = gateway(conn, gateway_id) or {}
    stats = gw.get("stats") or {}
    dropped = {
        k: v for k, v in ((stats.get("outbox") or {}).get("dropped") or {}).items() if isinstance(v, int)
    }
    in_ranges = _all(
        conn,
        "SELECT coalesce(sum(least(last_seq, %s) - greatest(first_seq, %s) + 1), 0) AS n FROM lost_ranges"
        " WHERE gateway_id = %s AND last_seq >= %s AND first_seq <= %s",
        (
            row["last_seq"] or 0,
            row["first_seq"] or 0,
            gateway_id,
            row["first_seq"] or 0,
            row["last_seq"] or 0,
        ),
    )[0]["n"]
    missing = 0 if row["received"] == 0 else row["last_seq"] - row["first_seq"] + 1 - row["received"]
    counted = sum(dropped.values())
    rest = max(0, missing - int(in_ranges))
    return {
        "gateway_id": gateway_id,
        "received": row["received"],
        "first_seq": row["first_seq"],
        "last_seq": row["last_seq"],
        "missing": missing,
        "gaps": [[g["first"], g["last"]] for g in gaps],
        "lost_with_replaced_outbox": int(in_ranges),
        "dropped_counted": dropped,
        "dropped_counted_total": counted,
        "unexplained": max(0, rest - counted),
        "restarts": gw.get("restarts", 0),
        "outbox_replaced": gw.get("outbox_replaced", 0),
    }


def lane_events(
    conn: psycopg.Connection[Any], gateway_id: str, kinds: tuple[str, ...], since_ms: int, recent_ms: int
) -> list[dict[str, Any]]:
    """Per source and kind among `kinds` since `since_ms`: how many since `recent_ms`, the newest
    one's time and attrs (fleet/lane_picture.py reads them)."""
    return _all(
        conn,
        "SELECT source_id, kind, count(*) FILTER (WHERE ts_ms >= %s) AS recent, max(ts_ms) AS last_ms,"
        " (array_agg(attrs ORDER BY seq DESC))[1] AS last_attrs FROM events"
        " WHERE gateway_id = %s AND kind = ANY(%s) AND ts_ms >= %s GROUP BY source_id, kind",
        (recent_ms, gateway_id, list(kinds), since_ms),
    )
