"""Per-row checksums, and the rows that failed theirs on the way out.

Every outbox row carries `crc`: CRC32 over its class, seq, record count, topic and payload, written
in the same INSERT. SQLite checks its own page structure but not what a row *says*; 16 bytes
scribbled into a payload leave a well-formed page that `PRAGMA quick_check` calls ok. The crc is
checked by every reader before a row is handed out (`OutboxReader.page`), and by the salvage,
where it also tells which class a row without a table belongs to.

A reader never writes (the uplink's connection is query_only). It reports a bad row to the
`CorruptRows` of the store that owns the file in this process; the writer deletes the row, counts
it (`<class>.corrupt`, in messages: a damaged row's record count cannot be trusted) and submits
one `outbox_row_corrupt` event per commit that found some.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from gateway.core import Klass

_FIXED = struct.Struct("<Bqq")


def row_crc(klass: int, seq: int, records: int, topic: bytes, payload: bytes) -> int:
    """CRC32 of one row (an unsigned 32-bit int, stored as an SQLite INTEGER)."""
    return zlib.crc32(_FIXED.pack(klass, seq, records), zlib.crc32(topic, zlib.crc32(payload)))


class CorruptRows:
    """Rows readers found bad, waiting for the writer (thread-safe). A row reported twice (two
    readers, or a re-read before the writer got to it) is deleted, counted and reported once: the
    writer counts only rows its DELETE actually removed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[Klass, int], None] = {}
        self.listener: Callable[[], None] | None = None  # the writer's wake-up

    def report(self, klass: Klass, seq: int) -> None:
        with self._lock:
            self._pending[(klass, seq)] = None
        if self.listener is not None:
            self.listener()

    def take(self) -> list[tuple[Klass, int]]:
        with self._lock:
            out, self._pending = list(self._pending), {}
            return out


class Owner(Protocol):
    """What readers need of the store that has a file open in this process."""

    corrupt: CorruptRows
    exclusive: bool
    conn: sqlite3.Connection
    lock: threading.RLock


_OWNERS: dict[str, Owner] = {}
_OWNERS_LOCK = threading.Lock()


def _key(path: Path) -> str:
    return os.path.realpath(path)


def register(path: Path, owner: Owner) -> None:
    with _OWNERS_LOCK:
        _OWNERS[_key(path)] = owner


def unregister(path: Path, owner: Owner) -> None:
    with _OWNERS_LOCK:
        if _OWNERS.get(_key(path)) is owner:
            del _OWNERS[_key(path)]


def sink_for(path: Path) -> CorruptRows | None:
    """The sink of the store that has `path` open in this process (None in a CLI process)."""
    with _OWNERS_LOCK:
        owner = _OWNERS.get(_key(path))
    return owner.corrupt if owner is not None else None


def exclusive_owner(path: Path) -> Owner | None:
    """The store holding `path` in exclusive mode (a full disk at start): readers share its
    connection, under its lock, because no second connection can open the file."""
    with _OWNERS_LOCK:
        owner = _OWNERS.get(_key(path))
    return owner if owner is not None and owner.exclusive else None
