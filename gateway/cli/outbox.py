"""`lintel outbox stats|peek`: look inside the outbox database (read-only, safe while running)."""

from __future__ import annotations

import argparse
import json
import sqlite3
from typing import Any

import sqlite_utils

from gateway.cli.config_file import read_config
from gateway.cli.output import console, err_console, esc, human_bytes, print_json, table
from gateway.core import Klass
from gateway.storage.outbox.store import TABLES


def _open(args: argparse.Namespace) -> sqlite3.Connection | None:
    loaded = read_config(args.config)
    if loaded is None:
        return None
    path = loaded.outbox_path
    if not path.exists():
        err_console.print(
            f"[red]no outbox database at {esc(path)}[/] (has the gateway run yet?)", highlight=False
        )
        return None
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def stats(conn: sqlite3.Connection) -> dict[str, Any]:
    classes = {}
    for klass in sorted(Klass, reverse=True):
        rows, size, records, oldest = conn.execute(
            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)+LENGTH(topic)),0), COALESCE(SUM(records),0), "
            f"MIN(created_ms) FROM {TABLES[klass]}"
        ).fetchone()
        classes[klass.label] = {"messages": rows, "bytes": size, "records": records, "oldest_ms": oldest}
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    drops = {k.removeprefix("drop."): v for k, v in meta.items() if k.startswith("drop.") and v}
    return {"classes": classes, "last_seq": meta.get("last_seq", 0), "dropped": drops}


def cmd_outbox(args: argparse.Namespace) -> int:
    conn = _open(args)
    if conn is None:
        return 1
    with conn:
        if args.outbox_command == "stats":
            data = stats(conn)
            if args.json:
                print_json(data)
                return 0
            t = table("outbox", ["class", "messages", "records", "bytes"])
            for name, c in data["classes"].items():
                t.add_row(name, str(c["messages"]), str(c["records"]), human_bytes(c["bytes"]))
            console.print(t)
            console.print(f"last seq {esc(data['last_seq'])}", highlight=False)
            for key, value in data["dropped"].items():
                console.print(f"[yellow]dropped[/] {esc(key)}: {esc(value)} records", highlight=False)
            return 0
        # peek: in the order the uplink sends (class, then seq)
        wanted = [Klass.parse(args.klass)] if args.klass else sorted(Klass, reverse=True)
        out: list[dict[str, Any]] = []
        for klass in wanted:
            left = args.limit - len(out)
            if left <= 0:
                break
            rows = sqlite_utils.Database(conn).table(TABLES[klass])
            for row in rows.rows_where(order_by="seq", limit=left):
                seq, topic, payload, created = row["seq"], row["topic"], row["payload"], row["created_ms"]
                out.append(
                    {
                        "class": klass.label,
                        "seq": seq,
                        "topic": topic,
                        "created_ms": created,
                        "payload": json.loads(payload),
                    }
                )
        if args.json:
            print_json(out)
            return 0
        t = table("next messages", ["class", "seq", "topic", "bytes"])
        for m in out:
            t.add_row(esc(m["class"]), str(m["seq"]), esc(m["topic"]), str(len(json.dumps(m["payload"]))))
        console.print(t)
        return 0
