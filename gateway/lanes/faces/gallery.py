"""The face gallery: residents, their consent and their templates, in their own SQLite file.

- Templates (descriptor vectors) are encrypted at rest with AES-GCM under the key file
  (`faces.key_file`); the associated data binds each one to its resident and embedder, so a row
  copied to another resident does not decrypt. Decrypted vectors exist only in memory.
- The resident's unit number and consent text (who recorded it, how) are sealed the same way
  (AES-GCM, bound to the resident and the column); rows of older versions that held them in
  plaintext are sealed, and the file purged, when the gallery is opened.
- Events, results and `state.db` never name a resident: they carry `pseudonym(resident_id)`, an
  HMAC under the gallery key (`p-` and 16 hex digits), the same on this gateway for as long as its
  key lives and unlinkable without it. The mapping is the key itself: `lintel faces list` shows it.
- A known plaintext encrypted under the key (`meta.key_check`) tells a wrong key apart from a
  corrupt row at open time, with a clear message.
- Deleting a resident removes the rows with `secure_delete` on (freed pages are zeroed), then
  checkpoints the WAL (TRUNCATE) and VACUUMs, so no template byte stays in the database file or
  its WAL. (What the flash translation layer keeps of overwritten blocks is out of our reach;
  the encryption is what protects those.)
- A resident may have a BLE tag for doors with `require = "face+tag"` (`tag_store.py`): its address
  and bindkey are sealed the same way (personal data: the key opens nothing, but links a device
  to a person).
- The file's format version is its `PRAGMA user_version` (`GALLERY_FORMAT`): 0 may hold rows with
  plaintext details, 1 has them sealed, 2 adds the tags table. Sealing and stamping (like any
  migration) wait until this release is not on probation (`gateway.releases.formats`): a rollback
  finds the file as the older release left it. The tags table itself is made at every open: a table
  an older release does not know is one it never reads. A newer format is refused with what to do.
- No face image is stored here. `generation` changes with every write: the running gateway
  polls it and reloads, so a CLI enrolment or deletion takes effect within a second.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.lanes.faces.keys import create_key, load_key
from gateway.releases.formats import MIGRATE, Format, FormatError, FormatGate

RESIDENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KEY_CHECK = b"lintel face gallery key check v1"
PSEUDONYM_LABEL = b"lintel resident pseudonym v1\x00"
SEALED_COLUMNS = ("unit", "consent_by", "consent_how")  # besides the templates
# 2: + tags (the resident's BLE tag, sealed); 1: every resident's details sealed; 0: rows of older
# versions may hold them in plaintext (read as they are; sealed by the migration).
GALLERY_FORMAT = Format("gallery", 2, runs_on=0)
FORMAT = GALLERY_FORMAT.current

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS residents (
    id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,           -- sealed: nonce + AES-GCM (a BLOB; plaintext in older files)
    consent_by TEXT NOT NULL,     -- sealed
    consent_how TEXT NOT NULL,    -- sealed
    consent_at_ms INTEGER NOT NULL,
    doors TEXT NOT NULL,          -- JSON list of door ids; [] = every door
    windows TEXT NOT NULL,        -- JSON list of {days, from, to}; [] = any time
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY,
    resident_id TEXT NOT NULL REFERENCES residents(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL,
    quality TEXT NOT NULL,        -- JSON of the quality metrics at enrolment (no image)
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS templates_by_resident ON templates(resident_id);
CREATE TABLE IF NOT EXISTS tags (
    resident_id TEXT PRIMARY KEY REFERENCES residents(id) ON DELETE CASCADE,
    sealed BLOB NOT NULL,         -- nonce + AES-GCM of {"address", "key"} (tag_store.py)
    created_ms INTEGER NOT NULL
);
"""


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


def _aad(resident_id: str, model: str) -> bytes:
    return f"{resident_id}\x00{model}".encode()


def _column_aad(resident_id: str, column: str) -> bytes:
    return f"{resident_id}\x00residents.{column}".encode()


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
        key = load_key(key_path)
        self._aead = AESGCM(key)
        self._pseudonym_key = hmac.new(key, PSEUDONYM_LABEL, hashlib.sha256).digest()
        self.key_path = key_path
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        self.db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        if new:
            os.chmod(path, 0o600)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "secure_delete=ON",
            "foreign_keys=ON",
        ):
            self.db.execute(f"PRAGMA {pragma}")
        found = 0 if new else int(self.db.execute("PRAGMA user_version").fetchone()[0])
        gate = gate or FormatGate.at(path.parent)
        try:
            migrating = not new and gate.check(GALLERY_FORMAT, found, path) == MIGRATE
        except FormatError as exc:
            self.db.close()
            raise GalleryError(str(exc)) from None
        self.db.executescript(SCHEMA)  # every table, tags too: an older release never reads it
        self._check_key()
        stamp = found  # current, or older and on probation: nothing is migrated or stamped
        if new:
            stamp = gate.writes(GALLERY_FORMAT)
        elif gate.may_migrate:  # whatever the stamp says: no plaintext stays at rest
            self._seal_plaintext_rows()
            stamp = GALLERY_FORMAT.current if migrating else found
        if stamp != found:
            self.db.execute(f"PRAGMA user_version={stamp}")

    # -- sealing of the residents' details and pseudonyms ------------------------------------

    def pseudonym(self, resident_id: str) -> str:
        """What events, results and state.db carry instead of `resident_id` (see the module doc)."""
        return "p-" + hmac.new(self._pseudonym_key, resident_id.encode(), hashlib.sha256).hexdigest()[:16]

    def _seal(self, resident_id: str, column: str, text: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, text.encode(), _column_aad(resident_id, column))

    def _open(self, resident_id: str, column: str, value: Any) -> str:
        if isinstance(value, str):  # written by an older version; sealed at the next open
            return value
        blob = bytes(value)
        try:
            return self._aead.decrypt(blob[:12], blob[12:], _column_aad(resident_id, column)).decode()
        except InvalidTag:
            raise GalleryError(
                f"the {column} of {resident_id} does not decrypt: the gallery was altered; "
                f"delete the resident (`lintel faces delete {resident_id}`) and enrol again"
            ) from None

    def _seal_plaintext_rows(self) -> None:
        """Seal unit and consent of rows an older version stored in plaintext, then purge."""
        rows = self.db.execute(
            "SELECT id, unit, consent_by, consent_how FROM residents "
            "WHERE typeof(unit) = 'text' OR typeof(consent_by) = 'text' OR typeof(consent_how) = 'text'"
        ).fetchall()
        if not rows:
            return
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for rid, *values in rows:
                sealed = [
                    self._seal(rid, column, value) if isinstance(value, str) else value
                    for column, value in zip(SEALED_COLUMNS, values, strict=True)
                ]
                self.db.execute(
                    "UPDATE residents SET unit = ?, consent_by = ?, consent_how = ? WHERE id = ?",
                    (*sealed, rid),
                )
        self.purge()  # the plaintext is in free pages and the WAL until then

    def seal_blob(self, data: bytes, aad: bytes) -> bytes:
        """nonce + AES-GCM of `data` under the gallery key, bound to `aad` (for tag_store)."""
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, data, aad)

    def open_blob(self, blob: bytes, aad: bytes) -> bytes | None:
        """The inverse of `seal_blob`; None when it does not decrypt (altered, or moved)."""
        try:
            return self._aead.decrypt(blob[:12], blob[12:], aad)
        except InvalidTag:
            return None

    def bump(self) -> None:
        """A new generation (inside the caller's transaction): the running gateway reloads."""
        self._bump()

    def _check_key(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if row is None:
            nonce = secrets.token_bytes(12)
            sealed = self._aead.encrypt(nonce, KEY_CHECK, b"key_check")
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('key_check', ?)", (nonce + sealed,))
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', 0)")
            return
        blob = bytes(row[0])
        try:
            self._aead.decrypt(blob[:12], blob[12:], b"key_check")
        except InvalidTag:
            raise GalleryError(
                f"the key {self.key_path} does not open the face gallery {self.path}: wrong key file "
                "(restore the key this gallery was created with; without it the templates are lost "
                "and residents must be enrolled again)"
            ) from None

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
            try:
                plain = self._aead.decrypt(bytes(nonce), bytes(sealed), _aad(resident_id, model))
            except InvalidTag:
                raise GalleryError(
                    f"a template of {resident_id} does not decrypt: the gallery was altered; "
                    f"delete the resident (`lintel faces delete {resident_id}`) and enrol again"
                ) from None
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
                nonce = secrets.token_bytes(12)
                sealed = self._aead.encrypt(
                    nonce, np.asarray(vector, np.float32).tobytes(), _aad(resident.id, model)
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
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.execute("VACUUM")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
