"""Rollouts in waves: a canary share first, then doubling waves, halted when rollbacks exceed a share.

The fleet never assumes: a member is `sent` until its gateway reports (fleet.reports) that it runs
the target (`succeeded`) or returned to its last-known-good (`rolled_back`), or refuses the command
(`refused`). The next wave goes out only when every member of the current one has reported and
the failures so far are within `max_rollbacks` (a share of the members that reported); otherwise
the rollout halts and sends nothing more. Commands are signed on the operator's machine, so
`advance` takes a `send` callable that signs and publishes one gateway's command there.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fleet.reports import BY_KIND, verdict

FAILED = ("rolled_back", "refused")


def plan_waves(gateways: list[str], canary_share: float) -> list[list[str]]:
    """Canary wave of ceil(share x n) gateways (at least one), then waves doubling in size."""
    ordered = sorted(gateways)
    if not ordered:
        return []
    size = max(1, math.ceil(canary_share * len(ordered)))
    waves, i = [], 0
    while i < len(ordered):
        waves.append(ordered[i : i + size])
        i += size
        size *= 2
    return waves


def create(
    conn: psycopg.Connection[Any],
    kind: str,
    target: str,
    gateways: list[str],
    canary_share: float,
    max_rollbacks: float,
    args: dict[str, Any] | None = None,
) -> str:
    """A rollout of `target` to `gateways`; `args` are sent with it (e.g. the config's text)."""
    rollout_id = f"{kind}-{secrets.token_hex(4)}"
    with conn.transaction():
        conn.execute(
            "INSERT INTO rollouts (id, kind, target, args, state, canary_share, max_rollbacks)"
            " VALUES (%s, %s, %s, %s, 'running', %s, %s)",
            (rollout_id, kind, target, Jsonb(args or {}), canary_share, max_rollbacks),
        )
        for wave, members in enumerate(plan_waves(gateways, canary_share)):
            for gw in members:
                conn.execute(
                    "INSERT INTO rollout_members (rollout_id, gateway_id, wave) VALUES (%s, %s, %s)",
                    (rollout_id, gw, wave),
                )
    return rollout_id


def _check_halt(cur: psycopg.Cursor[Any], rollout_id: str) -> None:
    row = cur.execute(
        "SELECT r.max_rollbacks, count(*) FILTER (WHERE m.state IN ('rolled_back', 'refused')),"
        " count(*) FILTER (WHERE m.state IN ('succeeded', 'rolled_back', 'refused'))"
        " FROM rollouts r JOIN rollout_members m ON m.rollout_id = r.id WHERE r.id = %s"
        " GROUP BY r.max_rollbacks",
        (rollout_id,),
    ).fetchone()
    if row and row[2] and row[1] / row[2] > row[0]:
        cur.execute(
            "UPDATE rollouts SET state = 'halted', halted_reason = %s WHERE id = %s AND state = 'running'",
            (
                f"{row[1]} of {row[2]} gateways that reported rolled back or refused (limit {row[0]:.0%})",
                rollout_id,
            ),
        )


def apply_report(
    cur: psycopg.Cursor[Any], gateway_id: str, event_kind: str, attrs: dict[str, Any], seq: int
) -> None:
    """A gateway's report event (inside the ingest transaction): settle its member of a rollout."""
    rows = cur.execute(
        "SELECT m.rollout_id, r.kind, r.target, m.command_id FROM rollout_members m"
        " JOIN rollouts r ON r.id = m.rollout_id WHERE m.gateway_id = %s AND m.state = 'sent'",
        (gateway_id,),
    ).fetchall()
    for rollout_id, kind, target, command_id in rows:
        outcome = verdict(kind, target, command_id, event_kind, attrs)
        if outcome is None:
            continue
        detail = str(attrs.get("reason") or attrs.get("error") or event_kind)[:300]
        cur.execute(
            "UPDATE rollout_members SET state = %s, report_seq = %s, detail = %s"
            " WHERE rollout_id = %s AND gateway_id = %s",
            (outcome, seq, detail, rollout_id, gateway_id),
        )
        _check_halt(cur, rollout_id)


def apply_refusal(cur: psycopg.Cursor[Any], gateway_id: str, command_id: str, code: str) -> None:
    cur.execute(
        "UPDATE rollout_members SET state = 'refused', detail = %s"
        " WHERE gateway_id = %s AND command_id = %s AND state = 'sent' RETURNING rollout_id",
        (f"command refused: {code}", gateway_id, command_id),
    )
    for (rollout_id,) in cur.fetchall():
        _check_halt(cur, rollout_id)


def advance(
    conn: psycopg.Connection[Any], rollout_id: str, send: Callable[[str, str, dict[str, Any], str], None]
) -> str:
    """Send the next wave if the current one has fully reported within the limit. `send(gateway,
    command, args, command_id)` signs, records and publishes one command. The members are marked
    `sent`, with their command ids, and committed *before* anything is published: a gateway may
    answer, and an ingest worker settle its member, before this function returns. Returns the
    rollout's state afterwards: running, halted or done. `conn` must be in autocommit mode."""
    with conn.transaction():
        state, kind, target, args = conn.execute(
            "SELECT state, kind, target, args FROM rollouts WHERE id = %s FOR UPDATE", (rollout_id,)
        ).fetchone() or (None, None, None, None)
        if state != "running":
            return str(state)
        rows = conn.execute(
            "SELECT wave, gateway_id, state FROM rollout_members WHERE rollout_id = %s"
            " ORDER BY wave, gateway_id",
            (rollout_id,),
        ).fetchall()
        if any(s == "sent" for _, _, s in rows):
            return "running"  # the current wave has not reported in full
        pending = [(w, g) for w, g, s in rows if s == "pending"]
        if not pending:
            conn.execute("UPDATE rollouts SET state = 'done' WHERE id = %s", (rollout_id,))
            return "done"
        wave = pending[0][0]
        to_send = [(gw, f"c-{secrets.token_hex(6)}") for w, gw in pending if w == wave]
        for gw, command_id in to_send:
            conn.execute(
                "UPDATE rollout_members SET state = 'sent', command_id = %s"
                " WHERE rollout_id = %s AND gateway_id = %s",
                (command_id, rollout_id, gw),
            )
    reports = BY_KIND[str(kind)]
    command_args: dict[str, Any] = dict(args or {})
    if reports.target_arg is not None:
        command_args[reports.target_arg] = target
    for gw, command_id in to_send:
        send(gw, reports.command, command_args, command_id)
    return "running"
