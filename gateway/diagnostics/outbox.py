"""The outbox backlog: how much waits to go upstream and since when (read-only, safe while running)."""

from __future__ import annotations

import os
import sqlite3

from gateway.core import Klass
from gateway.core.durations import for_people
from gateway.diagnostics.context import Context
from gateway.diagnostics.report import Finding, fail, ok, warn
from gateway.storage.outbox.store import TABLES

# A backlog older than this means the uplink is not delivering (the broker checks say why).
WARN_AGE_S = 3600.0
FAIL_AGE_S = 24 * 3600.0


def outbox_stats(path: str) -> dict[str, object]:
    """Messages, bytes and the oldest message per class, and the drop counters, read-only."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        classes: dict[str, dict[str, int | None]] = {}
        for klass in sorted(Klass, reverse=True):
            rows, size, oldest = conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload) + LENGTH(topic)), 0), MIN(created_ms) "
                f"FROM {TABLES[klass]}"
            ).fetchone()
            classes[klass.label] = {"messages": rows, "bytes": size, "oldest_ms": oldest}
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()
    drops = {k.removeprefix("drop."): v for k, v in meta.items() if k.startswith("drop.") and v}
    return {"classes": classes, "last_seq": meta.get("last_seq", 0), "dropped": drops}


def check_outbox(ctx: Context) -> list[Finding]:
    assert ctx.loaded is not None
    path = ctx.loaded.outbox_path
    if not path.exists():
        return [warn("outbox", f"no outbox at {path} yet", "it is created when the gateway first starts")]
    if not os.access(path, os.R_OK):
        return [warn("outbox", f"no permission to read {path}", "run `sudo lintel doctor`")]
    try:
        stats = outbox_stats(str(path))
    except sqlite3.Error as exc:
        return [
            fail(
                "outbox",
                f"cannot read {path}: {exc}",
                "restart the gateway: it checks the outbox at start and replaces a corrupt one "
                "(the old file is kept as outbox.db.corrupt-<time>)",
            )
        ]
    classes = stats["classes"]
    assert isinstance(classes, dict)
    waiting = sum(int(c["messages"]) for c in classes.values())
    oldest = min((c["oldest_ms"] for c in classes.values() if c["oldest_ms"]), default=None)
    line = f"{waiting} message(s) waiting"
    findings: list[Finding] = []
    if oldest is not None:
        age = max(0.0, (ctx.time_ms() - oldest) / 1000)
        line += f", the oldest {for_people(age)} old"
        if ctx.loaded.config.mqtt is None:
            findings.append(ok("outbox", f"{line} (no [mqtt]: the gateway only buffers)"))
        elif age > FAIL_AGE_S:
            findings.append(
                fail(
                    "outbox",
                    f"{line}: nothing has reached the broker for a day",
                    "fix the broker checks above; the backlog drains by itself once connected",
                )
            )
        elif age > WARN_AGE_S:
            findings.append(warn("outbox", f"{line}: the uplink is behind", "see the broker checks above"))
        else:
            findings.append(ok("outbox", line))
    else:
        findings.append(ok("outbox", f"{line}, last seq {stats['last_seq']}"))
    dropped = stats["dropped"]
    assert isinstance(dropped, dict)
    if dropped:
        listing = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items()))
        findings.append(
            warn(
                "outbox.drops",
                f"records were dropped since install: {listing}",
                "outbox_full/class_full/expired: the uplink was down too long for the caps "
                "(raise outbox.max_mb or fix the uplink); disk_floor/disk_full: free disk space",
            )
        )
    return findings
