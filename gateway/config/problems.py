"""Turn pydantic's validation errors into installer-readable problems.

Every problem reads `path.to.key: what is wrong (got X); expected Y`, where the path is the TOML
key path (`sources[2].interval_s`), X is the value as written in TOML and Y says what would work.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.config import driver_registry as registry
from gateway.core.config_base import ID_EXPECTED, ID_PATTERN
from gateway.core.errors import ConfigProblem

_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "a string in quotes",
    "dict": "a table",
    "list": "a list [...]",
    "model": "a table",
}


def show(value: Any) -> str:
    """A value as the installer wrote it in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return repr(value)


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types behind Optional / Union / Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        found: list[Any] = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                found.extend(_unwrap(arg))
        return found
    return [annotation]


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[str], type[BaseModel] | None, Any]:
    """Follow `loc` through the schema.

    Returns the rendered path segments (union tags dropped), the model owning the last key, and the
    pydantic FieldInfo of the last key (None where the key is unknown).
    """
    segments: list[str] = []
    current: list[Any] = [root]
    owner: type[BaseModel] | None = None
    field = None
    i = 0
    while i < len(loc):
        item = loc[i]
        models = [c for c in current if isinstance(c, type) and issubclass(c, BaseModel)]
        if isinstance(item, int):
            segments.append(f"[{item}]")
            nxt: list[Any] = []
            for c in current:
                if typing.get_origin(c) is list:
                    nxt.extend(_unwrap(typing.get_args(c)[0]))
            current = nxt
        elif len(models) > 1:
            # A discriminated union: pydantic puts the tag into the location; the path skips it.
            current = [m for m in models if _tag_of(m) == item] or models
        elif models and item in models[0].model_fields:
            owner, field = models[0], models[0].model_fields[item]
            segments.append(f".{item}" if segments else str(item))
            current = _unwrap(field.annotation)
        elif any(typing.get_origin(c) is dict for c in current):
            segments.append(f".{item}")
            dict_type = next(c for c in current if typing.get_origin(c) is dict)
            current = _unwrap(typing.get_args(dict_type)[1])
        else:
            owner = models[0] if models else owner
            field = None
            segments.append(f".{item}" if segments else str(item))
            current = []
        i += 1
    return segments, owner, field


def _tag_of(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("type")
    if field is None:
        return None
    args = typing.get_args(field.annotation)
    return args[0] if args else None


def _expected_for_field(field: Any) -> str:
    if field is None:
        return "a value"
    kinds = _unwrap(field.annotation)
    if all(isinstance(t, type) and issubclass(t, BaseModel) for t in kinds):
        return "a table"
    if len(kinds) == 1 and typing.get_origin(kinds[0]) is typing.Literal:
        return "one of: " + ", ".join(show(v) for v in typing.get_args(kinds[0]))
    if field.description:
        return f"a value: {field.description[0].lower()}{field.description[1:].rstrip('.')}"
    names = [getattr(t, "__name__", str(t)) for t in _unwrap(field.annotation)]
    return " or ".join(_TYPE_WORDS.get(n, n) for n in names)


def _is_source_type_path(path: str) -> bool:
    return path.startswith("sources[") and path.endswith("].type")


def _one(error: Any, root: type[BaseModel]) -> ConfigProblem:
    kind: str = error["type"]
    loc: tuple[Any, ...] = tuple(error["loc"])
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    dict_key = bool(loc) and loc[-1] == "[key]"
    if dict_key:
        loc = loc[:-1]
    segments, owner, field = _walk(root, loc)
    path = "".join(segments)
    got = None if isinstance(value, dict) else show(value)
    types_known = ", ".join(sorted(registry.DRIVERS))

    if kind == "lintel_at":
        return ConfigProblem(ctx["path"], error["msg"], ctx.get("got"), ctx.get("expected"))
    if kind == "lintel":
        if ctx.get("key"):
            key = str(ctx["key"])
            path = f"{path}{key}" if key.startswith("[") or not path else f"{path}.{key}"
        if ctx.get("got") is not None:
            got = ctx["got"]  # as the validator shows it (a password redacted, a single corner)
        return ConfigProblem(path, error["msg"], got, ctx.get("expected"))
    if kind == "missing":
        return ConfigProblem(path, "required key is missing", None, _expected_for_field(field))
    if kind == "extra_forbidden":
        known = sorted(owner.model_fields) if owner else []
        key = str(loc[-1])
        close = difflib.get_close_matches(key, known, n=1)
        if close:
            return ConfigProblem(path, "unknown key", None, f'"{close[0]}" (did you mean it?)')
        return ConfigProblem(path, "unknown key", None, "one of: " + ", ".join(known))
    if kind in ("union_tag_invalid", "union_tag_not_found") and not path.startswith("sources["):
        # Another tagged list (rules, door relays): pydantic lists the tags it expected.
        expected = "one of: " + str(ctx.get("expected_tags", "")).replace("'", "")
        if kind == "union_tag_not_found":
            return ConfigProblem(path + ".type", "required key is missing", None, expected)
        return ConfigProblem(path + ".type", "unknown type", show(ctx.get("tag", value)), expected)
    if kind in ("union_tag_invalid", "union_tag_not_found") or (
        kind == "literal_error" and _is_source_type_path(path)
    ):
        if kind == "union_tag_not_found":
            return ConfigProblem(path + ".type", "required key is missing", None, "one of: " + types_known)
        if not path.endswith(".type"):
            path += ".type"
        return ConfigProblem(
            path, "unknown source type", show(ctx.get("tag", value)), "one of: " + types_known
        )
    if dict_key:
        return ConfigProblem(path, "unknown table name", got, "one of: " + str(ctx.get("expected")))
    if kind == "literal_error":
        return ConfigProblem(path, "not an allowed value", got, "one of: " + str(ctx.get("expected")))
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        expected = ID_EXPECTED if pattern == ID_PATTERN else f"text matching {pattern}"
        return ConfigProblem(path, "invalid format", got, expected)
    bounds = {
        "greater_than": ">",
        "greater_than_equal": ">=",
        "less_than": "<",
        "less_than_equal": "<=",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()))
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return ConfigProblem(path, "out of range", got, f"a number {bounds[kind]} {limit}")
    if kind == "int_from_float":
        return ConfigProblem(path, "must be a whole number", got, "a whole number such as 5")
    if kind == "list_type" and isinstance(value, dict):
        # `[sources]` where `[[sources]]` was meant: one table instead of a list of tables.
        header = "".join(c for c in path if c not in "0123456789[]").replace("..", ".")
        return ConfigProblem(
            path, "written as one [table]", f"[{header}]", f"[[{header}]] (double brackets), once per entry"
        )
    for prefix, words in _TYPE_WORDS.items():
        if kind.startswith(prefix + "_") and (kind.endswith("_type") or kind.endswith("_parsing")):
            return ConfigProblem(path, "wrong type", got, words)
    if kind == "model_type" or kind == "model_attributes_type":
        return ConfigProblem(path, "wrong type", got, "a table")
    return ConfigProblem(path, error["msg"], got, None)


def problems_from_validation(error: ValidationError, root: type[BaseModel]) -> list[ConfigProblem]:
    seen: set[str] = set()
    problems = []
    for raw in error.errors(include_url=False):
        problem = _one(raw, root)
        if str(problem) not in seen:
            seen.add(str(problem))
            problems.append(problem)
    return problems
