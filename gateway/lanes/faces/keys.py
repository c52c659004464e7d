"""The gallery key: 32 random bytes in a file only the service user can read.

Created at install (`lintel faces init-key`, run by the set-up of a face lane, or on first
enrolment) with mode 0600 and O_EXCL, so an existing key is never overwritten: losing the key
makes every template unreadable, which is also how a whole gallery is destroyed on purpose.
A key file readable by group or others is refused, as ssh refuses a private key.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

KEY_BYTES = 32


class GalleryKeyError(Exception):
    """The key file is missing, malformed or too open; the message says what to do."""


def create_key(path: Path) -> bool:
    """Create the key file if it does not exist; True when it was created now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(KEY_BYTES))
        f.flush()
        os.fsync(f.fileno())
    return True


def load_key(path: Path) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise GalleryKeyError(
            f"face gallery key {path} is missing: create it with `lintel faces init-key` "
            "(a new key cannot open templates enrolled under an old one)"
        ) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise GalleryKeyError(
            f"face gallery key {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}): "
            f"run `chmod 600 {path}`"
        )
    data = path.read_bytes()
    if len(data) != KEY_BYTES:
        raise GalleryKeyError(
            f"face gallery key {path} has {len(data)} bytes, expected {KEY_BYTES}: not a key file"
        )
    return data
