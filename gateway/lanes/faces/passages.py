"""Anti-passback rows of the face lane in `state.db`: who passed which way, and when.

Keyed by the gallery's pseudonym (never the resident id: `state.db` is not sealed like the
gallery); rows written by older versions, keyed by resident id, are rewritten on load. The
deciders hold them by resident id (`decision.Passage`), shared by every entrance of a gateway.
"""

from __future__ import annotations

from typing import Any

from gateway.lanes.faces.decision import Passage
from gateway.lanes.faces.gallery import Gallery
from gateway.storage.state import StateStore

NS = "face_access"


def delete_resident(gallery: Gallery, store: StateStore, resident_id: str) -> int | None:
    """Remove a resident from the gallery (purged) and their passages from the state database.
    Returns the templates removed, or None for an unknown resident."""
    pseudonym = gallery.pseudonym(resident_id)
    removed = gallery.delete(resident_id)
    if removed is not None:
        store.save(NS, {}, deleted=[pseudonym, resident_id])  # (rows of older versions: by id)
    return removed


def passages_by_id(gallery: Gallery, saved: dict[str, Any]) -> dict[str, Passage]:
    """Anti-passback rows of state.db (keyed by pseudonym; by resident id in older versions) as the
    deciders hold them: by resident id. Rows of residents no longer in the gallery are dropped."""
    ids = {r.id for r in gallery.residents()}
    by_pseudonym = {gallery.pseudonym(rid): rid for rid in ids}
    out: dict[str, Passage] = {}
    for key, row in saved.items():
        rid = by_pseudonym.get(key) or (key if key in ids else None)
        if rid is not None and isinstance(row, dict) and {"direction", "ts_ms"} <= row.keys():
            out[rid] = Passage(row["direction"], row["ts_ms"])
    return out


def load_passages(gallery: Gallery, store: StateStore) -> dict[str, Passage]:
    """The saved passages by resident id; rows an older version keyed by resident id are saved
    again under the pseudonym."""
    saved = store.load(NS)
    passages = passages_by_id(gallery, saved)
    stale = [key for key in saved if not key.startswith("p-")]  # by resident id: older versions
    if stale:
        rows = {
            gallery.pseudonym(r): {"direction": p.direction, "ts_ms": p.ts_ms} for r, p in passages.items()
        }
        store.save(NS, rows, stale)
    return passages
