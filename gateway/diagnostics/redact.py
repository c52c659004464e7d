"""Keeping secrets out of a support bundle, twice over.

1. `redact_config`: the config as data, with every secret-bearing value replaced (keys named like
   passwords, keys and tokens; credentials inside URLs). File *paths* stay: they help, and the
   files they name are never copied.
2. `Scrubber`: the secrets themselves (inline values, the contents of every file the config names,
   the face gallery key), searched for in every byte of every member, in the forms they could take
   (as written, hex, base64), and replaced. A member that still holds one is left out.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway.core.redact import is_secret_key, mask_urls, url_secrets

REDACTED = "<redacted>"
# keys whose values are secrets (paths to them end in _file and are kept)
MIN_SECRET = 4  # shorter values would match everywhere; nothing that short is a real secret
MAX_SECRET_FILE = 64 * 1024


def redact_config(value: Any, key: str = "") -> Any:
    """A copy of parsed TOML with secret values replaced."""
    if isinstance(value, dict):
        return {k: redact_config(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_config(v, key) for v in value]
    if isinstance(value, str):
        if is_secret_key(key):
            return REDACTED
        return mask_urls(value)
    return value


def secret_files(raw: Any, resolve: Any) -> list[Path]:
    """Every file a `*_file` key of the raw config names (passwords, bindkeys, TLS keys, face key)."""
    found: list[Path] = []
    if isinstance(raw, dict):
        for k, v in raw.items():
            if k.endswith("_file") and isinstance(v, str):
                found.append(resolve(v))
            else:
                found += secret_files(v, resolve)
    elif isinstance(raw, list):
        for v in raw:
            found += secret_files(v, resolve)
    return found


def inline_secrets(raw: Any, key: str = "") -> list[str]:
    """Secret values written in the config itself (a bindkey, a URL's password)."""
    if isinstance(raw, dict):
        return [s for k, v in raw.items() for s in inline_secrets(v, k)]
    if isinstance(raw, list):
        return [s for v in raw for s in inline_secrets(v, key)]
    if isinstance(raw, str):
        out = []
        if is_secret_key(key):
            out.append(raw)
        return out + url_secrets(raw)
    return []


class Scrubber:
    def __init__(self) -> None:
        self._needles: set[bytes] = set()

    def add(self, secret: bytes | str) -> None:
        data = secret.encode() if isinstance(secret, str) else secret
        forms = {data, data.strip()}
        text = data.strip()
        # a PEM or multi-line secret: each long line on its own (a log may quote one line)
        forms.update(line.strip() for line in text.splitlines() if len(line.strip()) >= 16)
        for raw in list(forms):
            forms.update({raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw)})
            try:
                # a hex key as text (a bindkey): also its bytes, and the other letter case
                decoded = bytes.fromhex(raw.decode())
                forms.update({decoded, raw.lower(), raw.upper(), base64.b64encode(decoded)})
            except (ValueError, UnicodeDecodeError):
                pass
        self._needles.update(f for f in forms if len(f) >= MIN_SECRET)

    def add_file(self, path: Path) -> None:
        try:
            if path.is_file() and path.stat().st_size <= MAX_SECRET_FILE:
                self.add(path.read_bytes())
        except OSError:
            pass  # unreadable: it cannot leak through us either

    def add_all(self, secrets: Iterable[bytes | str]) -> None:
        for s in secrets:
            self.add(s)

    def scrub(self, data: bytes) -> bytes:
        for needle in sorted(self._needles, key=len, reverse=True):
            data = data.replace(needle, REDACTED.encode())
        return data

    def leaks(self, data: bytes) -> bool:
        return any(needle in data for needle in self._needles)
