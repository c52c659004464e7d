"""The `gateways` table's rows, inside a Store batch's transaction: every gateway a batch names
(site, prefix, last seen), births (versions, config, boot reason, restarts, replaced outboxes,
public keys) and status (online/offline). Births and status carry the highest seq so far, not their
own, so each updates the row only when newer than what it holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fleet.messages import Message


def seen(cur: psycopg.Cursor[Any], batch: Sequence[Message]) -> None:
    """Each gateway the batch names gets its row (created, or site, prefix and last seen updated)."""
    last = {m.gateway_id: m for m in batch}
    for m in sorted(last.values(), key=lambda m: m.gateway_id):  # one lock order for all workers
        cur.execute(
            "INSERT INTO gateways (gateway_id, site, prefix) VALUES (%s, %s, %s)"
            " ON CONFLICT (gateway_id) DO UPDATE SET site = excluded.site, prefix = excluded.prefix,"
            " last_seen = now()",
            (m.gateway_id, m.site, m.prefix),
        )


def birth(cur: psycopg.Cursor[Any], m: Message) -> None:
    d = m.doc
    raw_versions = d.get("versions")
    versions: dict[str, Any] = raw_versions if isinstance(raw_versions, dict) else {}
    reason = d.get("boot_reason") if isinstance(d.get("boot_reason"), str) else None
    cur.execute(
        "UPDATE gateways SET versions = %s, version = %s, config_sha256 = %s, boot_reason = %s,"
        " started_ms = %s, public_keys = COALESCE(%s, public_keys), birth_ts_ms = %s,"
        " births = births + 1, restarts = restarts + %s, outbox_replaced = outbox_replaced + %s"
        " WHERE gateway_id = %s AND (birth_ts_ms IS NULL OR birth_ts_ms < %s)",
        (
            Jsonb(versions),
            str(versions.get("lintel", ""))[:64] or None,
            str(d.get("config_sha256", ""))[:64] or None,
            reason,
            d.get("started_ms") if isinstance(d.get("started_ms"), int) else None,
            Jsonb(d["public_keys"]) if "public_keys" in d else None,
            m.ts_ms,
            int(reason not in (None, "first_start")),
            int(reason == "outbox_replaced"),
            m.gateway_id,
            m.ts_ms,
        ),
    )


def status(cur: psycopg.Cursor[Any], m: Message) -> None:
    cur.execute(
        "UPDATE gateways SET online = %s, status_ts_ms = %s"
        " WHERE gateway_id = %s AND (status_ts_ms IS NULL OR status_ts_ms <= %s)",
        (m.doc["state"] == "online", m.ts_ms, m.gateway_id, m.ts_ms),
    )
