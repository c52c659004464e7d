"""One generic check of the ids a config declares and names (gateway.core.references).

The sources declare their devices (every device id, and the ids of camera and modbus sources by
type); each lane in the registry declares its ids and names others' through its config module; the
commands section names doors. An id declared twice in one space, or a name no section declares,
is a `lintel_at` error naming the key, the value and the fix, with a did-you-mean.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from pydantic_core import PydanticCustomError

from gateway.config import lane_registry
from gateway.config.commands import CommandsSection
from gateway.config.commands import references as command_references
from gateway.core.config_base import SourceConfigBase
from gateway.core.references import BLE, CAMERA, DEVICE, MODBUS, Named, Ref

SOURCE_TYPES = {CAMERA: "camera", MODBUS: "modbus", BLE: "ble"}


def at(path: str, message: str, got: str, expected: str) -> PydanticCustomError:
    return PydanticCustomError("lintel_at", message, {"path": path, "got": got, "expected": expected})


def _one_of(name: str, known: set[str], what: str) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f' - did you mean "{close[0]}"?' if close else ""
    listed = ", ".join(sorted(known)[:8]) or "none configured"
    return f"the id of {what} ({listed}){hint}"


def source_names(sources: Sequence[SourceConfigBase]) -> list[Named]:
    """Every device id of the sources, and each camera and modbus source by its kind."""
    named = [
        Named(f"sources[{i}].{key}", device_id, DEVICE)
        for i, source in enumerate(sources)
        for key, device_id in source.device_ids()
    ]
    for kind, type_name in SOURCE_TYPES.items():
        named += [
            Named(f"sources[{i}].id", s.id, kind, space=kind)
            for i, s in enumerate(sources)
            if s.type == type_name
        ]
    return named


def check_references(config: object, sources: Sequence[SourceConfigBase], commands: CommandsSection) -> None:
    """Raise the first problem: an id declared twice, or a name that nothing declares."""
    names: list[Named] = source_names(sources)
    refs: list[Ref] = []
    for spec in (lane_registry.DOORS, *lane_registry.LANES):
        section = spec.section_of(config)
        if section:
            names += spec.names(section)
            refs += spec.references(section)
    refs += command_references(commands)
    check(names, refs)


def check(names: Iterable[Named], refs: Iterable[Ref]) -> None:
    first: dict[tuple[str, str], Named] = {}
    known: dict[str, set[str]] = {}
    for n in names:
        clash = first.setdefault((n.space, n.id), n)
        if clash is not n:
            raise at(n.path, n.problem, f'"{n.id}"', f"an id not already used by {clash.path}")
        known.setdefault(n.kind, set()).add(n.id)
    for ref in refs:
        pool = known.get(ref.kind, set())
        if ref.name not in pool:
            raise at(ref.path, ref.problem, f'"{ref.name}"', _one_of(ref.name, pool, ref.what))
