"""The face gallery: residents, their consent and their templates, in their own SQLite file.

- Templates, a resident's unit number and consent text, and a tag's details are sealed at rest
  under the key file (`faces.key_file`; what the key seals and how: sealing.py). Decrypted vectors
  exist only in memory; older rows that held details in plaintext are sealed, and the file purged,
  when the gallery is opened (off probation: gallery_file.py, with the file's tables and format).
- Events, results and `state.db` never name a resident: they carry `pseudonym(resident_id)`, an
  HMAC under the gallery key (`p-` and 16 hex digits). The mapping is the key itself: `lintel faces
  list` shows it.
- A wrong key is told apart from a corrupt row at open time, with a clear message.
- Deleting a resident removes the rows with `secure_delete` on, then checkpoints the WAL and
  VACUUMs, so no template byte stays in the database file or its WAL.
- A resident may have a BLE tag for doors with `require = "face+tag"` (`tag_store.py`).
- No face image is stored here. `generation` changes with every write: the running gateway
  polls it and reloads, so a CLI enrolment or deletion takes effect within a second.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gateway.lanes.faces.gallery_file import GalleryFile, purge
from gateway.lanes.faces.keys import create_key, load_key
from gateway.lanes.faces.sealing import Sealer, column_aad, template_aad
from gateway.releases.formats import FormatError, FormatGate

RESIDENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class GalleryError(Exception):
    """The gallery cannot be used or the request is invalid; the message says what to do."""


@dataclass(slots=True)
class Resident:
    id: str
    unit: str
    consent_by: str
    consent_how: str
    consent_at_ms: int
    doors: list[str] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)
    templates: int = 0
    created_ms: int = 0


@dataclass(slots=True)
class Templates:
    """Decrypted templates of one embedder, grouped by resident (rows of a resident adjacent)."""

    vectors: np.ndarray  # m × dim float32
    owners: np.ndarray  # m int32: index into `residents`
    residents: list[Resident]


class Gallery:
    def __init__(
        self, path: Path, key_path: Path, create: bool = False, gate: FormatGate | None = None
    ) -> None:
        """`gate`: whether this release may migrate the file (not on probation); default: from the
        update state beside the file."""
        self.path = path
        if not path.exists() and not create:
            raise GalleryError(f"no face gallery at {path}: enrol a resident with `lintel faces enroll`")
        if create:
            create_key(key_path)
        self._sealer = Sealer(load_key(key_path))
        self.key_path = key_path
        try:
            self._file = GalleryFile(path, gate)
        except FormatError as exc:
            raise GalleryError(str(exc)) from None
        self.db = self._file.db
        self._check_key()
        self._file.migrate(self._sealer)

    # -- sealing of the residents' details and pseudonyms ------------------------------------

    def pseudonym(self, resident_id: str) -> str:
        """What events, results and state.db carry instead of `resident_id` (see the module doc)."""
        return self._sealer.pseudonym(resident_id)

    def _seal(self, resident_id: str, column: str, text: str) -> bytes:
        return self._sealer.seal(text.encode(), column_aad(resident_id, column))

    def _open(self, resident_id: str, column: str, value: Any) -> str:
        if isinstance(value, str):  # written by an older version; sealed at the next open
            return value
        plain = self._sealer.open(bytes(value), column_aad(resident_id, column))
        if plain is None:
            raise GalleryError(
                f"the {column} of {resident_id} does not decrypt: the gallery was altered; "
                f"delete the resident (`lintel faces delete {resident_id}`) and enrol again"
            )
        return plain.decode()

    def seal_blob(self, data: bytes, aad: bytes) -> bytes:
        """nonce + AES-GCM of `data` under the gallery key, bound to `aad` (for tag_store)."""
        return self._sealer.seal(data, aad)

    def open_blob(self, blob: bytes, aad: bytes) -> bytes | None:
        """The inverse of `seal_blob`; None when it does not decrypt (altered, or moved)."""
        return self._sealer.open(blob, aad)

    def bump(self) -> None:
        """A new generation (inside the caller's transaction): the running gateway reloads."""
        self._bump()

    def _check_key(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if row is None:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('key_check', ?)", (self._sealer.key_check(),)
                )
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', 0)")
            return
        if not self._sealer.opens_key_check(bytes(row[0])):
            raise GalleryError(
                f"the key {self.key_path} does not open the face gallery {self.path}: wrong key file "
                "(restore the key this gallery was created with; without it the templates are lost "
                "and residents must be enrolled again)"
            )

    def close(self) -> None:
        self.db.close()

    # -- reading -----------------------------------------------------------------------------

    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def residents(self) -> list[Resident]:
        rows = self.db.execute(
            "SELECT r.id, r.unit, r.consent_by, r.consent_how, r.consent_at_ms, r.doors, r.windows, "
            "r.created_ms, (SELECT count(*) FROM templates t WHERE t.resident_id = r.id) "
            "FROM residents r ORDER BY r.id"
        ).fetchall()
        return [
            Resident(
                r[0],
                self._open(r[0], "unit", r[1]),
                self._open(r[0], "consent_by", r[2]),
                self._open(r[0], "consent_how", r[3]),
                r[4],
                json.loads(r[5]),
                json.loads(r[6]),
                r[8],
                r[7],
            )
            for r in rows
        ]

    def models(self) -> dict[str, dict[str, int]]:
        """Template counts per resident and embedder: {resident: {model: count}}. A resident with no
        template of the configured embedder is never matched and must be enrolled again (the photos
        are not kept, so old templates cannot be converted)."""
        out: dict[str, dict[str, int]] = {}
        for rid, model, count in self.db.execute(
            "SELECT resident_id, model, count(*) FROM templates GROUP BY resident_id, model"
        ):
            out.setdefault(rid, {})[model] = int(count)
        return out

    def resident(self, resident_id: str) -> Resident | None:
        return next((r for r in self.residents() if r.id == resident_id), None)

    def templates(self, model: str) -> Templates:
        """Every template of embedder `model`, decrypted. Rows of other embedders are skipped
        (they need re-enrolment after an embedder change: `lintel faces list` shows them)."""
        residents = {r.id: r for r in self.residents()}
        rows = self.db.execute(
            "SELECT resident_id, nonce, sealed FROM templates WHERE model = ? ORDER BY resident_id, id",
            (model,),
        ).fetchall()
        order: list[Resident] = []
        index: dict[str, int] = {}
        vectors, owners = [], []
        for resident_id, nonce, sealed in rows:
            plain = self._sealer.open_parts(bytes(nonce), bytes(sealed), template_aad(resident_id, model))
            if plain is None:
                raise GalleryError(
                    f"a template of {resident_id} does not decrypt: the gallery was altered; "
                    f"delete the resident (`lintel faces delete {resident_id}`) and enrol again"
                )
            if resident_id not in index:
                index[resident_id] = len(order)
                order.append(residents[resident_id])
            vectors.append(np.frombuffer(plain, np.float32))
            owners.append(index[resident_id])
        dim = vectors[0].size if vectors else 0
        return Templates(
            np.vstack(vectors) if vectors else np.zeros((0, dim), np.float32),
            np.array(owners, np.int32),
            order,
        )

    # -- writing -----------------------------------------------------------------------------

    def _bump(self) -> None:
        self.db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")

    def enroll(
        self,
        resident: Resident,
        vectors: list[np.ndarray],
        model: str,
        qualities: list[dict[str, float]],
        now_ms: int,
    ) -> int:
        """Add a resident (or templates to an existing one, updating unit, doors and windows).
        Returns the resident's template count."""
        if not RESIDENT_ID.match(resident.id):
            raise GalleryError(
                f"resident id {resident.id!r} is not valid: lower-case letters, digits, '-' and '_', "
                "up to 64, e.g. 'r-0412' (never a name: the id travels upstream)"
            )
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT INTO residents VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "unit = excluded.unit, consent_by = excluded.consent_by, consent_how = excluded.consent_how, "
                "consent_at_ms = excluded.consent_at_ms, doors = excluded.doors, windows = excluded.windows",
                (
                    resident.id,
                    self._seal(resident.id, "unit", resident.unit),
                    self._seal(resident.id, "consent_by", resident.consent_by),
                    self._seal(resident.id, "consent_how", resident.consent_how),
                    resident.consent_at_ms,
                    json.dumps(resident.doors),
                    json.dumps(resident.windows),
                    now_ms,
                ),
            )
            for vector, quality in zip(vectors, qualities, strict=True):
                nonce, sealed = self._sealer.seal_parts(
                    np.asarray(vector, np.float32).tobytes(), template_aad(resident.id, model)
                )
                self.db.execute(
                    "INSERT INTO templates (resident_id, model, nonce, sealed, quality, created_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (resident.id, model, nonce, sealed, json.dumps(quality), now_ms),
                )
            self._bump()
            (count,) = self.db.execute(
                "SELECT count(*) FROM templates WHERE resident_id = ?", (resident.id,)
            ).fetchone()
        return int(count)

    def delete(self, resident_id: str) -> int | None:
        """Remove a resident and every template, leaving no recoverable bytes in the file or WAL.
        Returns the number of templates removed, or None for an unknown resident."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT 1 FROM residents WHERE id = ?", (resident_id,)).fetchone()
            if row is None:
                return None
            (count,) = self.db.execute(
                "SELECT count(*) FROM templates WHERE resident_id = ?", (resident_id,)
            ).fetchone()
            self.db.execute("DELETE FROM templates WHERE resident_id = ?", (resident_id,))
            self.db.execute("DELETE FROM tags WHERE resident_id = ?", (resident_id,))
            self.db.execute("DELETE FROM residents WHERE id = ?", (resident_id,))
            self._bump()
        self.purge()
        return int(count)

    def purge(self) -> None:
        """Rewrite the file without free pages and empty the WAL (old page images live there)."""
        purge(self.db)
