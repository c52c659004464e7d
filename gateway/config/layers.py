"""The effective config as layers: the installer's local file at the bottom, a deployment over it.

One rule folds a layer over the one below (`fold`): tables merge key by key, anything else (a value,
a list such as `[[sources]]` or `[[doors]]`) replaces the value below whole. A layer that sets
`x_secret` drops the `x_file` of the same table below, so a deployed `password_secret` replaces a
local `password_file` instead of clashing with it. `fold` also records where each value came from
(`origins`: key path -> layer name), which `lintel config show --origin` prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LOCAL = "local"


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def leaf_origins(doc: Mapping[str, Any], layer: str, prefix: str = "") -> dict[str, str]:
    """Every key path of `doc` (tables walked, lists and values as leaves) -> `layer`."""
    found: dict[str, str] = {}
    for key, value in doc.items():
        path = _join(prefix, key)
        if isinstance(value, Mapping):
            found.update(leaf_origins(value, layer, path))
        else:
            found[path] = layer
    return found


def fold(
    below: Mapping[str, Any],
    over: Mapping[str, Any],
    layer: str,
    origins: Mapping[str, str],
    prefix: str = "",
) -> tuple[dict[str, Any], dict[str, str]]:
    """`over` laid on `below`: the merged document and the updated origins (see the module doc)."""
    merged: dict[str, Any] = dict(below)
    where = dict(origins)
    for key, value in over.items():
        path = _join(prefix, key)
        if key.endswith("_secret"):
            paired = key[: -len("_secret")] + "_file"
            if paired in merged:
                del merged[paired]
                where.pop(_join(prefix, paired), None)
        old = merged.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            merged[key], where = fold(old, value, layer, where, path)
            continue
        for stale in [p for p in where if p == path or p.startswith(path + ".")]:
            del where[stale]
        merged[key] = value
        if isinstance(value, Mapping):
            where.update(leaf_origins(value, layer, path))
        else:
            where[path] = layer
    return merged, where


def show_value(value: Any) -> str:
    """A value as one TOML-ish line, secrets never among them (only their names are in a config)."""
    import json

    return json.dumps(value, ensure_ascii=False, default=str)
