"""The gallery key: 32 random bytes that only the service can read, kept apart from the gallery.

Where it comes from (`key_location`), first found wins:
1. systemd credentials: `$CREDENTIALS_DIRECTORY/lintel-faces-key`, which the unit provides with
   `LoadCredentialEncrypted=lintel-faces-key:/etc/lintel/faces.key.cred` (`systemd-creds encrypt`,
   bound to the host's TPM2 or its credential secret: a copied disk does not open it);
2. `[faces] key_file` (README: `/etc/lintel/faces.key`, mode 0640 root:lintel);
3. the old default `<state_dir>/faces.key`: beside the gallery, so whoever copies the state
   folder (a backup, a support bundle gone wrong, a pulled SD card) has both. Still read, with a
   warning at start, in `check-config` and in `lintel doctor`, until it is moved (`MIGRATION`).
Created at install (`lintel faces init-key`) with mode 0600 and O_EXCL, so an existing key is never
overwritten: losing the key makes every template unreadable, which is also how a whole gallery is
destroyed on purpose. A key file others can read, or its group can write, is refused, as ssh refuses
a private key; readable by its group only when root owns it (the service's group, as installed).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.lanes.faces.config import FacesSection

KEY_BYTES = 32
CREDENTIAL = "lintel-faces-key"
MIGRATION = (
    "move it out of the state folder: `sudo install -m 0640 -o root -g lintel {old} /etc/lintel/faces.key "
    '&& sudo shred -u {old}`, then set [faces] key_file = "/etc/lintel/faces.key" (or load it as the '
    'systemd credential lintel-faces-key: README "Face access")'
)


def key_location(key_file: Path | None, state_dir: Path) -> tuple[Path, bool]:
    """(key path, beside_the_gallery): see the module docstring for the order."""
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / CREDENTIAL).is_file():
        return Path(credentials) / CREDENTIAL, False
    path = key_file if key_file is not None else state_dir / "faces.key"
    return path, _inside(path, state_dir)


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


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
    group_read_ok = st.st_uid == 0  # root's file, readable by the service's group (0640 root:lintel)
    too_open = stat.S_IRWXO | stat.S_IWGRP | stat.S_IXGRP | (0 if group_read_ok else stat.S_IRGRP)
    if st.st_mode & too_open:
        raise GalleryKeyError(
            f"face gallery key {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}): "
            f"run `chmod 600 {path}` (or 0640 with root as its owner and the service's group)"
        )
    data = path.read_bytes()
    if len(data) != KEY_BYTES:
        raise GalleryKeyError(
            f"face gallery key {path} has {len(data)} bytes, expected {KEY_BYTES}: not a key file"
        )
    return data


def face_paths(faces: FacesSection, state_dir: Path) -> tuple[Path, Path]:
    """(gallery database, key file): the gallery where `[faces]` says or in the state folder; the
    key from systemd credentials, `[faces] key_file` or the old default (gateway.lanes.faces.keys)."""
    gallery = Path(faces.gallery) if faces.gallery else state_dir / "faces.db"
    key, _beside = key_location(Path(faces.key_file) if faces.key_file else None, state_dir)
    return gallery, key


def key_beside_gallery(faces: FacesSection, state_dir: Path) -> str | None:
    """A warning when the gallery key lies in the state folder (beside the gallery), else None."""
    key, beside = key_location(Path(faces.key_file) if faces.key_file else None, state_dir)
    if not beside:
        return None
    return (
        f"faces.key_file: the face gallery key {key} lies in the state folder beside the gallery: whoever "
        f"copies that folder can read every template; {MIGRATION.format(old=key)}"
    )
