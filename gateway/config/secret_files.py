"""Secret files named by the config (`*password_file`, `*key_file`, `bindkey_file`) that others can read.

A password file of mode 0644 works, and hands the broker's, a door relay's or a sensor's secret to
every local account. `check-config` prints, `lintel run` logs and `lintel doctor` shows a warning
naming the key, the file, its mode and the fix. Readable by its group is expected when that group is
the service's (`lintel`, as installed by the README) or root's; any other group, and any access for
others, is warned about. Files that do not exist are the loader's business, not this check's.
"""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gateway.core.errors import ConfigProblem

SECRET_SUFFIXES = ("password_file", "key_file")
SERVICE_GROUPS = frozenset({"lintel", "root"})
# Keys with a stricter check of their own (the face gallery key must be owner-only: a failure).
OWN_CHECK = ("faces.",)


def secret_file_keys(data: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(key path, file name) of every secret file key in a config dumped to plain data."""
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(value, str) and str(key).endswith(SECRET_SUFFIXES):
                yield path, value
            else:
                yield from secret_file_keys(value, path)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from secret_file_keys(item, f"{where}[{index}]")


def exposure(path: Path) -> str | None:
    """Why `path` is too open (None when it is not, or cannot be looked at)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        return f"readable or writable by every local account (mode {mode:04o})"
    if mode & stat.S_IWGRP:
        return f"writable by its group (mode {mode:04o})"
    if mode & stat.S_IRGRP:
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        if group not in SERVICE_GROUPS:
            return f"readable by group {group} (mode {mode:04o}), not the service's group"
    return None


def secret_file_warnings(config: Any, resolve: Callable[[str], Path]) -> list[ConfigProblem]:
    warnings = []
    for key, name in secret_file_keys(config.model_dump()):
        if key.startswith(OWN_CHECK):
            continue
        path = resolve(name)
        why = exposure(path)
        if why is not None:
            warnings.append(
                ConfigProblem(
                    key,
                    f"the secret file is {why}",
                    f'"{path}"',
                    f"chmod 0640 {path} && chown root:lintel {path} (readable by the service's group only)",
                )
            )
    return warnings
