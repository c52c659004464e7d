"""Reading the outbox for the uplink and the CLI: FIFO pages of one class, every row checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.core import Klass
from gateway.storage.outbox.checks import CorruptRows, exclusive_owner, row_crc, sink_for
from gateway.storage.outbox.schema import TABLES, PendingMessage, connect


class OutboxReader:
    """A read-only view for the uplink and the CLI: FIFO pages of one class, each row checked.

    A row whose crc does not match is never returned: it is reported to `on_corrupt` (by default
    the owning store's `CorruptRows`, found by path) and skipped, and the rest flows. Rows of a file
    not yet migrated (crc NULL) are returned unchecked.
    """

    def __init__(self, path: Path, on_corrupt: CorruptRows | None = None) -> None:
        self.sink = on_corrupt or sink_for(path)
        self.corrupt_seen = 0
        owner = exclusive_owner(path)
        self._shared = owner
        if owner is not None:
            self.conn = owner.conn  # the file is locked by the writer: share its connection
        else:
            self.conn = connect(path)
            self.conn.execute("PRAGMA query_only=1")
        # A schema-1 file not migrated yet (a full disk at start) has no crc column: read unchecked.
        columns = {row[1] for row in self.conn.execute(f"PRAGMA table_info({TABLES[Klass.TELEMETRY]})")}
        self._crc = "crc" if "crc" in columns else "NULL"

    def page(
        self,
        klass: Klass,
        after_seq: int,
        upto_seq: int | None,
        limit: int,
        prefix: str | None = None,
        with_prefix: bool = True,
    ) -> list[PendingMessage]:
        """Up to `limit` good rows after `after_seq` (and up to `upto_seq`). Pages made only of bad
        rows are skipped over, so an empty result always means "nothing more". With `prefix`, only
        the rows whose topic starts with it (`with_prefix`) or only the others: two links that share
        the outbox (native, Sparkplug) each read their own rows, and never see the other's."""
        out: list[PendingMessage] = []
        while not out:
            rows = self._fetch(klass, after_seq, upto_seq, limit, prefix, with_prefix)
            if not rows:
                return out
            for seq, topic, payload, records, crc in rows:
                message = _checked(klass, seq, topic, payload, records, crc)
                if message is None:
                    self.corrupt_seen += 1
                    if self.sink is not None:
                        self.sink.report(klass, seq)
                else:
                    out.append(message)
            after_seq = rows[-1][0]
        return out

    def _fetch(
        self, klass: Klass, after: int, upto: int | None, limit: int, prefix: str | None, with_prefix: bool
    ) -> list[tuple[Any, ...]]:
        table = TABLES[klass]
        sql = f"SELECT seq, CAST(topic AS BLOB), payload, records, {self._crc} FROM {table} WHERE seq > ?"
        args: tuple[int | str, ...] = (after,)
        if upto is not None:
            sql += " AND seq <= ?"
            args = (*args, upto)
        if prefix is not None:
            sql += f" AND substr(topic, 1, ?) {'=' if with_prefix else '!='} ?"
            args = (*args, len(prefix), prefix)
        sql += " ORDER BY seq LIMIT ?"
        if self._shared is not None:
            with self._shared.lock:
                return self.conn.execute(sql, (*args, limit)).fetchall()
        return self.conn.execute(sql, (*args, limit)).fetchall()

    def close(self) -> None:
        if self._shared is None:
            self.conn.close()


def _checked(
    klass: Klass, seq: int, topic: Any, payload: Any, records: Any, crc: Any
) -> PendingMessage | None:
    if not isinstance(topic, bytes) or not isinstance(payload, bytes) or not isinstance(records, int):
        return None
    if crc is not None and row_crc(int(klass), seq, records, topic, payload) != crc:
        return None
    try:
        text = topic.decode()
    except UnicodeDecodeError:
        return None
    return PendingMessage(klass, seq, text, payload)
