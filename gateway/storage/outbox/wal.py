"""Reading an SQLite WAL frame by frame, without SQLite, for the outbox salvage (recover.py).

SQLite stops reading a WAL at the first frame whose checksum fails and silently drops every
transaction after it; this reader checks each frame on its own, so the committed frames after a
damaged one are still found. File format: https://www.sqlite.org/fileformat2.html (section 4).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

WAL_MAGIC = (0x377F0682, 0x377F0683)
WAL_HEADER, WAL_FRAME_HEADER = 32, 24


def _wal_checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


@dataclass(frozen=True, slots=True)
class WalScan:
    frames: list[tuple[int, bytes]]  # (page number, image) of committed frames that verify, in order
    valid_prefix: int  # frames SQLite itself will use (up to the last commit before a break)
    damaged: int  # frames of committed transactions that fail their checksum
    lost_commits: bool  # committed transactions lie beyond the break: SQLite alone would drop them


def scan_wal(wal: bytes, page_size: int) -> WalScan | None:
    """Check every frame of a WAL on its own (seeded by the stored checksum of the frame before),
    so a damaged frame does not hide the committed frames after it. None: no usable WAL."""
    if len(wal) < WAL_HEADER:
        return None
    magic, _v, wps, _ckpt, salt1, salt2 = struct.unpack_from(">6I", wal, 0)
    if magic not in WAL_MAGIC or wps != page_size:
        return None
    big = magic & 1 == 1
    prev = struct.unpack_from(">2I", wal, 24)
    step = WAL_FRAME_HEADER + page_size
    frames: list[tuple[int, int, bool, bytes]] = []  # pgno, commit, ok, image
    for off in range(WAL_HEADER, len(wal) - step + 1, step):
        pgno, commit, s1, s2, c1, c2 = struct.unpack_from(">6I", wal, off)
        image = wal[off + WAL_FRAME_HEADER : off + step]
        # A frame of an older WAL generation (or with damaged salts) is never part of the database.
        ok = (s1, s2) == (salt1, salt2)
        ok = ok and _wal_checksum(wal[off : off + 8] + image, prev[0], prev[1], big) == (c1, c2)
        frames.append((pgno, commit, ok, image))
        prev = (c1, c2)
    valid_prefix = 0
    for i, (_p, commit, ok, _img) in enumerate(frames):
        if not ok:
            break
        if commit:
            valid_prefix = i + 1
    last_commit = max((i for i, f in enumerate(frames) if f[1] and f[2]), default=-1)
    committed = frames[: last_commit + 1]
    return WalScan(
        frames=[(p, img) for p, _c, ok, img in committed if ok and p > 0],
        valid_prefix=valid_prefix,
        damaged=sum(1 for f in committed if not f[2]),
        lost_commits=last_commit + 1 > valid_prefix,
    )
