"""Keys that moved, read at their old place with a warning that names the new one.

An installer's existing config must keep running after an update: a remote update that refused the
old keys with exit 78 would fail its probation and roll back on every site until someone edited
each file by hand. So an old key is moved to its new place before validation and `check-config`,
`run` and `doctor` say where it goes now. Only two spellings of one setting that disagree are an
error (which one was meant?), named with both keys.

- `[vision] threads`, `model_dir`, `manifest_dir` → `[inference]`: the engine and the model
  catalog serve the fire lanes and face access alike; `[vision]` keeps the fire lanes' detector.
- `[vision] timezone` and `[care] timezone` → `[gateway] timezone`: one building, one zone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic_core import PydanticCustomError

from gateway.core.errors import ConfigProblem

# (old section, key) -> (new section, key)
MOVED: dict[tuple[str, str], tuple[str, str]] = {
    ("vision", "threads"): ("inference", "threads"),
    ("vision", "model_dir"): ("inference", "model_dir"),
    ("vision", "manifest_dir"): ("inference", "manifest_dir"),
    ("vision", "timezone"): ("gateway", "timezone"),
    ("care", "timezone"): ("gateway", "timezone"),
}


def move_renamed(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """The document with every old key at its new place, and one warning per old key found.
    Raises a validation error naming both keys where two spellings of a setting disagree."""
    doc = {name: dict(table) if isinstance(table, Mapping) else table for name, table in raw.items()}
    warnings: list[ConfigProblem] = []
    written: dict[tuple[str, str], str] = {}  # new key -> where its value was written
    for (old_section, old_key), (new_section, new_key) in MOVED.items():
        old_table = doc.get(old_section)
        if not isinstance(old_table, dict) or old_key not in old_table:
            continue
        value = old_table.pop(old_key)
        old, new = f"{old_section}.{old_key}", f"{new_section}.{new_key}"
        target = doc.setdefault(new_section, {})
        if not isinstance(target, dict):
            continue  # [new_section] is not a table: validation names that
        if new_key in target and target[new_key] != value:
            first = written.get((new_section, new_key), new)
            raise PydanticCustomError(
                "lintel_at",
                "{old} and {first} disagree",
                {
                    "old": old,
                    "first": first,
                    "path": old,
                    "got": f"{_shown(value)} and {_shown(target[new_key])}",
                    "expected": f"one value, as {new} (the old key removed)",
                },
            )
        target[new_key] = value
        written.setdefault((new_section, new_key), old)
        warnings.append(
            ConfigProblem(
                old,
                f"this key moved to [{new_section}] {new_key}; it still works here for now",
                _shown(value),
                f"{new} = {_shown(value)} instead (and {old} removed)",
            )
        )
    return doc, warnings


def _shown(value: Any) -> str:
    """A value as TOML writes it (these keys hold no secrets)."""
    return json.dumps(value) if isinstance(value, str) else str(value)
