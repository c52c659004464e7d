"""Writes checked messages into PostgreSQL, exactly once by (gateway_id, seq).

One batch is one transaction: the data messages' keys go into `ledger` first (`ON CONFLICT DO
NOTHING RETURNING`), and only the messages whose key was new write their rows. A message delivered
twice, to the same worker or to two workers at once, therefore writes once: the second insert
waits on the first's row lock and then finds it. The caller acknowledges the batch to the broker
only after `write` returned, so a crash before the commit means redelivery, never loss.
Births and status (which carry the highest seq so far, not their own) update the gateway's row
only when newer than what it holds.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fleet import gateway_rows, rollout
from fleet.messages import Message
from fleet.reports import REPORT_KINDS

UTC = dt.UTC
RESOLVING_EVENTS = frozenset({"alarm_resolved", "care_resolved", "fire_lane_cleared"})


@dataclass
class WriteResult:
    new: int = 0
    duplicates: int = 0
    readings: int = 0


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=UTC)


def _value(v: Any) -> tuple[float | None, str | None]:
    if isinstance(v, bool):
        return float(v), None
    if isinstance(v, int | float):
        return float(v), None
    return None, None if v is None else (v if isinstance(v, str) else json.dumps(v))[:1000]


def _alarm_id(attrs: dict[str, Any]) -> str | None:
    a = attrs.get("alarm_id")
    if isinstance(a, int | str) and not isinstance(a, bool) and str(a):
        return str(a)[:64]
    return None


class Store:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def write(self, batch: Sequence[Message]) -> WriteResult:
        """Write one batch in one transaction (raises on database errors: nothing was written)."""
        result = WriteResult()
        with self.conn.transaction(), self.conn.cursor() as cur:
            gateway_rows.seen(cur, batch)
            data: dict[tuple[str, int], Message] = {}
            for m in batch:
                if m.is_data:
                    if (m.gateway_id, m.seq) in data:
                        result.duplicates += 1
                    else:
                        data[(m.gateway_id, m.seq)] = m
            fresh: list[Message] = []
            if data:
                keys = list(data.values())
                cur.execute(
                    "INSERT INTO ledger (gateway_id, seq, kind, ts_ms)"
                    " SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::bigint[])"
                    " ON CONFLICT DO NOTHING RETURNING gateway_id, seq",
                    (
                        [m.gateway_id for m in keys],
                        [m.seq for m in keys],
                        [m.kind for m in keys],
                        [m.ts_ms for m in keys],
                    ),
                )
                fresh = [data[(g, s)] for g, s in cur.fetchall()]
                result.duplicates += len(data) - len(fresh)
            result.new = len(fresh)
            result.readings = self._readings(cur, [m for m in fresh if m.kind == "telemetry"])
            for m in fresh:
                if m.kind == "state":
                    self._state(cur, m)
                elif m.kind in ("event", "alarm"):
                    self._event(cur, m)
                elif m.kind == "stats":
                    self._stats(cur, m)
                elif m.kind == "command/result":
                    self._command_result(cur, m)
            for m in batch:
                if m.kind == "birth":
                    gateway_rows.birth(cur, m)
                elif m.kind == "status":
                    gateway_rows.status(cur, m)
        return result

    def _readings(self, cur: psycopg.Cursor[Any], msgs: list[Message]) -> int:
        n = 0
        if not msgs:
            return 0
        with cur.copy(
            "COPY readings (gateway_id, seq, source_id, point, ts, value, value_text, quality, counter)"
            " FROM STDIN"
        ) as copy:
            for m in msgs:
                source = m.doc["source_id"][:128]
                for r in m.doc["readings"]:
                    value, text = _value(r.get("value"))
                    quality = r.get("quality")
                    copy.write_row(
                        (
                            m.gateway_id,
                            m.seq,
                            source,
                            r["point"][:128],
                            _ts(r["ts_ms"]),
                            value,
                            text,
                            quality if isinstance(quality, str) else None,
                            r.get("kind") == "counter",
                        )
                    )
                    n += 1
        return n

    def _state(self, cur: psycopg.Cursor[Any], m: Message) -> None:
        d = m.doc
        cur.execute(
            "INSERT INTO states (gateway_id, source_id, point, seq, ts_ms, value, quality)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (gateway_id, source_id, point) DO UPDATE"
            " SET seq = excluded.seq, ts_ms = excluded.ts_ms, value = excluded.value,"
            " quality = excluded.quality WHERE states.seq < excluded.seq",
            (
                m.gateway_id,
                d["source_id"],
                d["point"],
                m.seq,
                m.ts_ms,
                Jsonb(d.get("value")),
                d.get("quality"),
            ),
        )

    def _event(self, cur: psycopg.Cursor[Any], m: Message) -> None:
        d = m.doc
        attrs: dict[str, Any] = d["attrs"]
        cur.execute(
            "INSERT INTO events (gateway_id, seq, ts_ms, source_id, kind, severity, attrs)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (m.gateway_id, m.seq, m.ts_ms, d["source_id"], d["kind"], d["severity"], Jsonb(attrs)),
        )
        kind, alarm_id = d["kind"], _alarm_id(attrs)
        if alarm_id and (m.kind == "alarm" or d["severity"] == "alarm"):
            opened = attrs.get("opened_ms") if isinstance(attrs.get("opened_ms"), int) else m.ts_ms
            notify = attrs.get("notify") if isinstance(attrs.get("notify"), int) else 1
            cur.execute(
                "INSERT INTO alarms (gateway_id, alarm_id, kind, source_id, state, rank, opened_ms, notify,"
                " attrs) VALUES (%s, %s, %s, %s, 'open', 0, %s, %s, %s)"
                " ON CONFLICT (gateway_id, alarm_id) DO UPDATE SET kind = excluded.kind,"
                " source_id = excluded.source_id, opened_ms = LEAST(alarms.opened_ms, excluded.opened_ms),"
                " notify = GREATEST(alarms.notify, excluded.notify),"
                " attrs = COALESCE(alarms.attrs, excluded.attrs)",
                (m.gateway_id, alarm_id, kind, d["source_id"], opened, notify, Jsonb(attrs)),
            )
        elif alarm_id and kind == "alarm_acked":
            by = attrs.get("by") if isinstance(attrs.get("by"), str) else None
            cur.execute(
                "INSERT INTO alarms (gateway_id, alarm_id, kind, source_id, state, rank, acked_ms, acked_by)"
                " VALUES (%s, %s, %s, %s, 'acknowledged', 1, %s, %s)"
                " ON CONFLICT (gateway_id, alarm_id) DO UPDATE SET acked_ms = excluded.acked_ms,"
                " acked_by = excluded.acked_by, rank = GREATEST(alarms.rank, 1),"
                " state = CASE WHEN alarms.rank < 1 THEN 'acknowledged' ELSE alarms.state END",
                (m.gateway_id, alarm_id, attrs.get("alarm_kind"), d["source_id"], m.ts_ms, by),
            )
        elif alarm_id and kind in RESOLVING_EVENTS:
            cur.execute(
                "INSERT INTO alarms (gateway_id, alarm_id, kind, source_id, state, rank, resolved_ms)"
                " VALUES (%s, %s, %s, %s, 'resolved', 2, %s)"
                " ON CONFLICT (gateway_id, alarm_id) DO UPDATE SET resolved_ms = excluded.resolved_ms,"
                " rank = 2, state = 'resolved'",
                (m.gateway_id, alarm_id, attrs.get("alarm_kind"), d["source_id"], m.ts_ms),
            )
        if kind == "outbox_replaced" and isinstance(attrs.get("seq_ranges_lost"), dict):
            for klass, ranges in attrs["seq_ranges_lost"].items():
                for pair in ranges if isinstance(ranges, list) else []:
                    if isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, int) for x in pair):
                        cur.execute(
                            "INSERT INTO lost_ranges VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                            (m.gateway_id, m.seq, str(klass)[:16], pair[0], pair[1]),
                        )
        if kind in REPORT_KINDS:
            rollout.apply_report(cur, m.gateway_id, kind, attrs, m.seq)

    def _stats(self, cur: psycopg.Cursor[Any], m: Message) -> None:
        cur.execute(
            "UPDATE gateways SET stats = %s, stats_seq = %s, stats_ts_ms = %s"
            " WHERE gateway_id = %s AND (stats_seq IS NULL OR stats_seq < %s)",
            (Jsonb(m.doc), m.seq, m.ts_ms, m.gateway_id, m.seq),
        )
        if cur.rowcount == 0:
            return  # an older stats than the one we hold: its device picture is stale
        for dev in m.doc.get("devices", []):
            if not isinstance(dev, dict) or not isinstance(dev.get("device_id"), str):
                continue
            errors = dev.get("errors") if isinstance(dev.get("errors"), int) else 0
            cur.execute(
                "INSERT INTO devices (gateway_id, device_id, source_id, kind, online, last_seen_ms,"
                " offline_since_ms, errors, last_error, report, stats_seq)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (gateway_id, device_id) DO UPDATE SET source_id = excluded.source_id,"
                " kind = excluded.kind, online = excluded.online, last_seen_ms = excluded.last_seen_ms,"
                " offline_since_ms = excluded.offline_since_ms, errors = excluded.errors,"
                " last_error = excluded.last_error, report = excluded.report, stats_seq = excluded.stats_seq"
                " WHERE devices.stats_seq < excluded.stats_seq",
                (
                    m.gateway_id,
                    dev["device_id"],
                    str(dev.get("source_id", "")),
                    str(dev.get("kind", "")),
                    dev.get("online") if isinstance(dev.get("online"), bool) else None,
                    dev.get("last_seen_ms") if isinstance(dev.get("last_seen_ms"), int) else None,
                    dev.get("offline_since_ms") if isinstance(dev.get("offline_since_ms"), int) else None,
                    errors,
                    str(dev["last_error"])[:500] if dev.get("last_error") else None,
                    Jsonb(dev),
                    m.seq,
                ),
            )

    def _command_result(self, cur: psycopg.Cursor[Any], m: Message) -> None:
        d = m.doc
        cid = d.get("correlation_id") if isinstance(d.get("correlation_id"), str) else None
        cur.execute(
            "INSERT INTO command_results (gateway_id, seq, correlation_id, command, outcome, code, by_key,"
            " origin, doc) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                m.gateway_id,
                m.seq,
                cid,
                d.get("command"),
                d["outcome"],
                d.get("code"),
                d.get("by"),
                d.get("origin"),
                Jsonb(d),
            ),
        )
        if cid is None:
            return
        # matched by id AND gateway: a result published by another gateway cannot settle our request
        cur.execute(
            "UPDATE commands SET outcome = %s, code = %s, reason = %s, result = %s, result_seq = %s,"
            " result_ts_ms = %s WHERE id = %s AND gateway_id = %s AND result_seq IS NULL",
            (
                d["outcome"],
                d.get("code"),
                d.get("reason"),
                Jsonb(d.get("result")),
                m.seq,
                m.ts_ms,
                cid,
                m.gateway_id,
            ),
        )
        if cur.rowcount and d["outcome"] != "ok":
            rollout.apply_refusal(cur, m.gateway_id, cid, str(d.get("code") or d["outcome"]))
