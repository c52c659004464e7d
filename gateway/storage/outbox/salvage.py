"""Salvage: every readable row of a corrupt outbox file, with its original seq.

How (contract):
1. Page images: the file (a truncated last page padded), overlaid with every WAL frame of a
   committed transaction whose own checksum holds (`wal.scan_wal`), so one damaged frame does
   not hide the transactions after it.
2. Tree walk: from the schema on page 1, each class table's b-tree is walked; a child that is not a
   valid page marks its key range `(lo, hi]` damaged. Each leaf cell must pass its row crc.
3. Orphan scan, only when the walk met damage or no schema: every other page that parses as a table
   leaf, except the freelist's, gives the cells that pass a crc under some class (the crc covers the
   class, so a row found without its table still lands in the right one).
4. Counts: `lost = rows the last committed meta said minus rows recovered`, exact whenever the meta
   page was readable (its `rows.<class>` keys are written in every transaction); None otherwise.
   Lost seq ranges are the damaged key ranges, narrowed to the stretch between recovered rows, and
   told in native seqs (what receivers see): from the native seq after the class's last recovered
   native row before the range to the one before its first after it.

A bad page loses at most the rows on it. Limits: rows written by a Lintel before row checksums
(schema 1) are kept only when found through their table and their payload's own `seq` matches; when
page 1 *and* the freelist are gone, rows on free pages (already delivered) may come back: the
receivers drop them as duplicates by seq.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from gateway.core import Klass
from gateway.storage.outbox.checks import row_crc
from gateway.storage.outbox.pages import Pages, Value, index_interior_children, interior_children

TABLE_NAMES = {f"m{int(k)}": k for k in Klass}
MAX_PAGES_WALKED = 10_000_000  # a cycle in a damaged tree ends the walk, never the daemon


@dataclass(frozen=True, slots=True)
class Row:
    klass: Klass
    seq: int
    topic: bytes
    payload: bytes
    created_ms: int
    records: int
    crc: int
    native_seq: int | None  # None: a bridge row


@dataclass(slots=True)
class SalvageReport:
    recovered: dict[Klass, int] = field(default_factory=lambda: dict.fromkeys(Klass, 0))
    lost: dict[Klass, int | None] = field(default_factory=lambda: dict.fromkeys(Klass, None))
    lost_ranges: dict[Klass, list[tuple[int, int]]] = field(default_factory=dict)
    pages_damaged: int = 0
    wal_frames_damaged: int = 0
    meta: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0  # the native numbering's high-water mark
    last_row: int = 0  # the rows'
    stored: bool = True  # False: the fresh database had no room for them (a full disk)

    def as_event(self) -> dict[str, Any]:
        """The salvage part of the `outbox_replaced` event (class labels as keys)."""
        lost = self.lost
        known = all(v is not None for v in lost.values())
        return {
            "rows_recovered": sum(self.recovered.values()),
            "rows_lost": sum(v or 0 for v in lost.values()) if known else None,
            "recovered_by_class": {k.label: n for k, n in self.recovered.items() if n},
            "lost_by_class": {k.label: n for k, n in lost.items() if n != 0},
            "seq_ranges_lost": {
                k.label: [list(r) for r in ranges] for k, ranges in self.lost_ranges.items() if ranges
            },
            "pages_damaged": self.pages_damaged,
            "wal_frames_damaged": self.wal_frames_damaged,
            "rows_stored": self.stored,
        }


def _row(klass: Klass, seq: int, values: list[Value], need_crc: bool) -> Row | None:
    if len(values) < 5:
        return None
    _, topic, payload, created, records = values[:5]
    crc = values[5] if len(values) > 5 else None
    # schema 3 stores native_seq; before it, every native row's (records > 0) was its seq
    native = values[6] if len(values) > 6 else (seq if isinstance(records, int) and records > 0 else None)
    if not (native is None or isinstance(native, int)):
        return None
    if not (isinstance(topic, bytes) and isinstance(payload, bytes)):
        return None
    if not (isinstance(created, int) and isinstance(records, int)):
        return None
    if isinstance(crc, int):
        if row_crc(int(klass), seq, records, topic, payload) != crc & 0xFFFFFFFF:
            return None
        return Row(klass, seq, topic, payload, created, records, crc & 0xFFFFFFFF, native)
    if need_crc:
        return None
    try:  # a schema-1 row: its payload must be the JSON message of this very seq
        body = json.loads(payload)
        topic.decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or body.get("seq") != seq:
        return None
    crc = row_crc(int(klass), seq, records, topic, payload)
    return Row(klass, seq, topic, payload, created, records, crc, native)


class _Salvage:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.visited: set[int] = set()
        self.rows: dict[tuple[Klass, int], Row] = {}
        self.damaged: dict[Klass, list[tuple[int, int | None]]] = {k: [] for k in Klass}
        self.bad_pages: set[int] = set()
        self.tree_damaged = False

    def walk(self, root: int) -> list[tuple[int, int, int | None]] | None:
        """Leaves (page, lo, hi) of a table tree and the damaged ranges; None if the root is bad."""
        leaves: list[tuple[int, int, int | None]] = []
        stack: list[tuple[int, int, int | None]] = [(root, 0, None)]
        bad: list[tuple[int, int | None]] = []
        while stack and len(self.visited) < MAX_PAGES_WALKED:
            pgno, lo, hi = stack.pop()
            page = self.pages.get(pgno)
            if page is None or pgno in self.visited:
                bad.append((lo, hi))
                self.bad_pages.add(pgno)
                continue
            self.visited.add(pgno)
            children = interior_children(page, pgno)
            if children is not None:
                low = lo
                for child, key in children:
                    stack.append((child, low, key if key is not None else hi))
                    low = key if key is not None else low
            else:
                leaves.append((pgno, lo, hi))
        self._bad = bad
        return leaves

    def table(self, klass: Klass, root: int) -> None:
        leaves = self.walk(root) or []
        damaged = list(self._bad)
        for pgno, lo, hi in leaves:
            parsed = self.pages.table_cells(pgno)
            if parsed is None:
                damaged.append((lo, hi))
                self.bad_pages.add(pgno)
                continue
            cells, unparsable = parsed
            failed = unparsable
            for seq, values in cells:
                row = _row(klass, seq, values, need_crc=False)
                if row is None:
                    failed += 1
                else:
                    self.rows[(klass, seq)] = row
            if failed:
                damaged.append((lo, hi))
                self.bad_pages.add(pgno)
        if damaged:
            self.tree_damaged = True
        self.damaged[klass].extend(damaged)

    def orphans(self, free: set[int]) -> None:
        for pgno in sorted(self.pages.images):
            if pgno in self.visited or pgno in free:
                continue
            parsed = self.pages.table_cells(pgno)
            if parsed is None:
                continue
            for seq, values in parsed[0]:
                for klass in Klass:
                    row = _row(klass, seq, values, need_crc=True)
                    if row is not None:
                        self.rows.setdefault((klass, seq), row)
                        break

    def schema(self) -> dict[str, int] | None:
        """Root pages by table name, or None when page 1's schema cannot be read."""
        if interior_children(self.pages.get(1) or b"", 1) is None and self.pages.table_cells(1) is None:
            return None
        roots: dict[str, int] = {}
        for pgno, _, _ in self.walk(1) or []:
            for _, values in (self.pages.table_cells(pgno) or ([], 0))[0]:
                if len(values) >= 4 and isinstance(values[1], bytes) and isinstance(values[3], int):
                    roots[values[1].decode(errors="replace")] = values[3]
        return roots

    def meta(self, root: int | None) -> dict[str, int]:
        leaves: list[int] = []
        if root is not None:
            stack = [root]
            while stack and len(leaves) < 10_000:
                pgno = stack.pop()
                page = self.pages.get(pgno)
                if page is None or pgno in self.visited:
                    continue
                self.visited.add(pgno)
                kids = index_interior_children(page, pgno)
                if kids is not None:
                    stack.extend(kids)
                else:
                    leaves.append(pgno)
        out: dict[str, int] = {}
        for pgno in leaves:
            for values in self.pages.index_cells(pgno) or []:
                if len(values) == 2 and isinstance(values[0], bytes) and isinstance(values[1], int):
                    out[values[0].decode(errors="replace")] = values[1]
        return out


def _narrow(ranges: list[tuple[int, int | None]], seqs: list[int], last_seq: int) -> list[tuple[int, int]]:
    """The stretches of each damaged (lo, hi] range that no recovered row falls in."""
    out: set[tuple[int, int]] = set()
    for lo, hi in ranges:
        top = last_seq if hi is None else hi
        inside = seqs[bisect_right(seqs, lo) : bisect_right(seqs, top)]
        edges = [lo, *inside, top + 1]
        for a, b in pairwise(edges):
            if b - a > 1:
                out.add((a + 1, b - 1))
    return sorted(out)


def _in_native_seqs(ranges: list[tuple[int, int]], rows: list[Row], last_seq: int) -> list[tuple[int, int]]:
    """Row seq ranges of one class told in native seqs, bounded by the class's recovered native rows
    (`rows`, in row order) on either side."""
    anchors = [(r.seq, r.native_seq) for r in rows if r.native_seq is not None]
    keys = [a[0] for a in anchors]
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        i = bisect_right(keys, lo - 1)  # anchors[:i] lie before the range
        first = anchors[i - 1][1] + 1 if i else 1
        j = bisect_right(keys, hi)  # anchors[j:] lie after it
        last = anchors[j][1] - 1 if j < len(anchors) else last_seq
        if first <= last:
            out.append((first, last))
    return out


def salvage(pages: Pages, free: set[int], wal_frames_damaged: int) -> tuple[list[Row], SalvageReport]:
    """Recover the rows of a damaged outbox (see the module docstring)."""
    s = _Salvage(pages)
    roots = s.schema()
    if roots is None:
        s.tree_damaged = True
        roots = {}
    meta = s.meta(roots.get("meta"))
    for name, klass in TABLE_NAMES.items():
        if name in roots:
            s.table(klass, roots[name])
        else:
            s.tree_damaged = True
    if s.tree_damaged:
        s.orphans(free)
    if not meta:  # the meta tree is gone: look for its leaf among the orphans
        for pgno in sorted(pages.images):
            if pgno in s.visited:
                continue
            cells = pages.index_cells(pgno) or []
            found = {
                v[0].decode(errors="replace"): v[1] for v in cells if len(v) == 2 and isinstance(v[0], bytes)
            }
            if "last_seq" in found:
                meta = {k: v for k, v in found.items() if isinstance(v, int)}
                break
    rows = sorted(s.rows.values(), key=lambda r: (r.klass, r.seq))
    report = SalvageReport(meta=meta, wal_frames_damaged=wal_frames_damaged)
    report.last_seq = max([meta.get("last_seq", 0), *(r.native_seq or 0 for r in rows)])
    report.last_row = max([meta.get("last_row", 0), report.last_seq, *(r.seq for r in rows)])
    report.pages_damaged = len(s.bad_pages)
    for klass in Klass:
        seqs = [r.seq for r in rows if r.klass == klass]
        report.recovered[klass] = len(seqs)
        expected = meta.get(f"rows.{klass.label}")
        report.lost[klass] = None if expected is None else max(0, expected - len(seqs))
        if report.lost[klass] != 0:
            lost = _narrow(s.damaged[klass], seqs, report.last_row)
            of_class = [r for r in rows if r.klass == klass]
            report.lost_ranges[klass] = _in_native_seqs(lost, of_class, report.last_seq)
    return rows, report
