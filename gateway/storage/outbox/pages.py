"""Reading an SQLite file page by page, without SQLite: what the outbox salvage stands on.

Only what the salvage needs: the header, b-tree page headers, table and index leaf cells (with
overflow chains), records, the freelist (WAL frames: wal.py). Every function takes bytes it does not
trust and never raises on bad input: a malformed page or cell yields None / nothing, and the
caller decides what was lost. (SQLite's own `.recover` in Debian's sqlite3 3.40 aborts with
"SQL logic error" on a random page, a zeroed header or a truncated file, recovering nothing; this
reader keeps every cell it can parse, and the outbox's per-row CRC decides which cells are real.)

File format: https://www.sqlite.org/fileformat2.html (sections 1.3, 1.5, 1.6, 2, 4).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"SQLite format 3\x00"
TABLE_INTERIOR, TABLE_LEAF, INDEX_INTERIOR, INDEX_LEAF = 5, 13, 2, 10

Value = int | float | bytes | None


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position); raises IndexError past the end (callers catch it per cell)."""
    value = 0
    for i in range(8):
        byte = buf[pos + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    return (value << 8) | buf[pos + 8], pos + 9


@dataclass(frozen=True, slots=True)
class Header:
    page_size: int
    reserved: int
    freelist_trunk: int
    valid: bool  # False: the 100-byte header was unreadable and page_size is a guess

    @property
    def usable(self) -> int:
        return self.page_size - self.reserved


def read_header(data: bytes) -> Header:
    if len(data) >= 100 and data[:16] == MAGIC:
        raw = struct.unpack_from(">H", data, 16)[0]
        size = 65536 if raw == 1 else raw
        if size >= 512 and size & (size - 1) == 0:
            return Header(size, data[20], struct.unpack_from(">I", data, 32)[0], True)
    return Header(guess_page_size(data), 0, 0, False)


def guess_page_size(data: bytes) -> int:
    """The page size under which the largest share of pages parse as b-tree pages (the header is
    gone). A multiple of the real size scores as well as the real one, so ties go to the smaller."""
    best, best_share = 4096, -1.0
    for size in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536):
        starts = range(size, len(data) - size + 1, size)
        if not starts:
            continue
        good = sum(1 for off in starts if _cell_offsets(data[off : off + size], 2) is not None)
        share = good / len(starts)
        if share > best_share + 1e-9:
            best, best_share = size, share
    return best


def page_type(page: bytes, pgno: int) -> int:
    return page[100 if pgno == 1 else 0] if len(page) > 100 else -1


def _cell_offsets(page: bytes, pgno: int) -> list[int] | None:
    """Cell pointer array of a b-tree page, or None when the header is implausible."""
    hdr = 100 if pgno == 1 else 0
    kind = page[hdr]
    if kind not in (TABLE_INTERIOR, TABLE_LEAF, INDEX_INTERIOR, INDEX_LEAF):
        return None
    n = struct.unpack_from(">H", page, hdr + 3)[0]
    start = hdr + (12 if kind in (TABLE_INTERIOR, INDEX_INTERIOR) else 8)
    if start + 2 * n > len(page):
        return None
    offsets = list(struct.unpack_from(f">{n}H", page, start))
    if any(o < start + 2 * n or o >= len(page) for o in offsets):
        return None
    return offsets


def interior_children(page: bytes, pgno: int) -> list[tuple[int, int | None]] | None:
    """(child page, key upper bound) of a table interior page; the right-most child has None."""
    offsets = _cell_offsets(page, pgno)
    hdr = 100 if pgno == 1 else 0
    if offsets is None or page[hdr] != TABLE_INTERIOR:
        return None
    out: list[tuple[int, int | None]] = []
    try:
        for off in offsets:
            child = struct.unpack_from(">I", page, off)[0]
            key, _ = varint(page, off + 4)
            out.append((child, key))
    except (IndexError, struct.error):
        return None
    out.append((struct.unpack_from(">I", page, hdr + 8)[0], None))
    return out


def index_interior_children(page: bytes, pgno: int) -> list[int] | None:
    offsets = _cell_offsets(page, pgno)
    hdr = 100 if pgno == 1 else 0
    if offsets is None or page[hdr] != INDEX_INTERIOR:
        return None
    try:
        children = [struct.unpack_from(">I", page, off)[0] for off in offsets]
    except struct.error:
        return None
    return [*children, struct.unpack_from(">I", page, hdr + 8)[0]]


class Pages:
    """Page images by number (the file, overlaid with WAL frames by the caller)."""

    def __init__(self, header: Header, images: dict[int, bytes]) -> None:
        self.header = header
        self.images = images

    def get(self, pgno: int) -> bytes | None:
        return self.images.get(pgno)

    def _payload(self, page: bytes, pos: int, size: int, max_local: int) -> bytes | None:
        """The cell payload starting at `pos`, following its overflow chain."""
        usable = self.header.usable
        if size <= max_local:
            return page[pos : pos + size] if pos + size <= len(page) else None
        min_local = (usable - 12) * 32 // 255 - 23
        local = min_local + (size - min_local) % (usable - 4)
        if local > max_local:
            local = min_local
        if pos + local + 4 > len(page):
            return None
        parts = [page[pos : pos + local]]
        got = local
        nxt = struct.unpack_from(">I", page, pos + local)[0]
        seen: set[int] = set()
        while got < size:
            over = self.images.get(nxt)
            if over is None or nxt in seen or len(over) < 4:
                return None
            seen.add(nxt)
            take = min(size - got, usable - 4, len(over) - 4)
            parts.append(over[4 : 4 + take])
            got += take
            nxt = struct.unpack_from(">I", over, 0)[0]
        return b"".join(parts)

    def _leaf(self, pgno: int, kind: int) -> tuple[bytes, list[int]] | None:
        """The page and its cell offsets when page `pgno` is there and is a leaf of `kind`."""
        page = self.images.get(pgno)
        if page is None:
            return None
        offsets = _cell_offsets(page, pgno)
        if offsets is None or page[100 if pgno == 1 else 0] != kind:
            return None
        return page, offsets

    def table_cells(self, pgno: int) -> tuple[list[tuple[int, list[Value]]], int] | None:
        """(rowid, record values) of each parsable cell of a table leaf, and the count that was not
        parsable. None when the page is not a table leaf at all."""
        leaf = self._leaf(pgno, TABLE_LEAF)
        if leaf is None:
            return None
        page, offsets = leaf
        cells, bad = [], 0
        for off in offsets:
            try:
                size, pos = varint(page, off)
                rowid, pos = varint(page, pos)
                payload = self._payload(page, pos, size, self.header.usable - 35)
                values = record(payload) if payload is not None else None
            except (IndexError, struct.error):
                values = None
            if values is None:
                bad += 1
            else:
                cells.append((rowid, values))
        return cells, bad

    def index_cells(self, pgno: int) -> list[list[Value]] | None:
        leaf = self._leaf(pgno, INDEX_LEAF)
        if leaf is None:
            return None
        page, offsets = leaf
        max_local = (self.header.usable - 12) * 64 // 255 - 23
        out = []
        for off in offsets:
            try:
                size, pos = varint(page, off)
                payload = self._payload(page, pos, size, max_local)
                values = record(payload) if payload is not None else None
            except (IndexError, struct.error):
                values = None
            if values is not None:
                out.append(values)
        return out

    def freelist(self) -> set[int]:
        """Trunk and leaf pages of the freelist (empty when the header is gone)."""
        free: set[int] = set()
        trunk = self.header.freelist_trunk
        while trunk and trunk not in free:
            page = self.images.get(trunk)
            if page is None:
                break
            free.add(trunk)
            nxt, count = struct.unpack_from(">II", page, 0)
            count = min(count, (len(page) - 8) // 4)
            free.update(struct.unpack_from(f">{count}I", page, 8))
            trunk = nxt
        return free


def record(payload: bytes) -> list[Value] | None:
    """Decode an SQLite record; None when it is malformed."""
    try:
        hsize, pos = varint(payload, 0)
        if hsize > len(payload) or hsize < 1:
            return None
        types = []
        while pos < hsize:
            t, pos = varint(payload, pos)
            types.append(t)
        body = hsize
        values: list[Value] = []
        for t in types:
            if t == 0:
                values.append(None)
            elif t in (8, 9):
                values.append(t - 8)
            elif 1 <= t <= 6:
                n = (1, 2, 3, 4, 6, 8)[t - 1]
                values.append(int.from_bytes(payload[body : body + n], "big", signed=True))
                body += n
            elif t == 7:
                values.append(struct.unpack_from(">d", payload, body)[0])
                body += 8
            elif t >= 12:
                n = (t - 12) // 2
                values.append(payload[body : body + n])
                body += n
            else:
                return None
        return values if body == len(payload) else None
    except (IndexError, struct.error):
        return None


def split_pages(data: bytes, page_size: int) -> dict[int, bytes]:
    """Page images of a file; a truncated last page is padded with zeros (its cells that lie
    past the end then fail to parse or to verify)."""
    out = {}
    for i, off in enumerate(range(0, len(data), page_size), start=1):
        page = data[off : off + page_size]
        out[i] = page if len(page) == page_size else page + bytes(page_size - len(page))
    return out
