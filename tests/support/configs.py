"""The tests' config builder, and TOML snippets the process tests share (a broker section, a Modbus
bus with one power meter, a threshold rule).

`config_toml` takes every section as data (`gateway`, `runtime`, `outbox`, `mqtt` tables as dicts
that override the defaults), so a test says what it changes instead of patching TOML text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

Table = Mapping[str, object]


def toml_value(value: object) -> str:
    """A TOML value for a str, bool, int, float, Path or list of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML value for {value!r}")


def toml_table(name: str, table: Table) -> str:
    """`[name]` with its keys (nested dicts become `[name.key]` tables)."""
    lines = [f"[{name}]"]
    nested: list[str] = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            nested.append(toml_table(f"{name}.{key}", value))
        else:
            lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n" + "".join("\n" + t for t in nested)


def config_toml(
    state_dir: Path,
    *,
    gateway: Table | None = None,
    runtime: Table | None = None,
    outbox: Table | None = None,
    mqtt: str | Table = "",
    sources: str = "",
    extra: str = "",
    sections: Mapping[str, Table] | None = None,
) -> str:
    """A minimal config for tests. `gateway`, `runtime` and `outbox` override the defaults key by
    key; `mqtt` is the body of an [mqtt] table or a dict (empty: no broker); `sources` (and any
    further sections) and `extra` (more `[outbox]` lines) are TOML text appended as given;
    `sections` adds tables by name (`{"bridges": {"sparkplug": {"enabled": True}}}`)."""
    base = {"id": "gw-test", "site": "site-a", "state_dir": state_dir, "runtime_dir": state_dir / "run"}
    text = "\n" + toml_table("gateway", {**base, **(gateway or {})}) + "\n"
    if runtime:
        text += toml_table("runtime", runtime) + "\n"
    text += toml_table("outbox", {"min_free_disk_mb": 1, **(outbox or {})}) + f"{extra}\n"
    if mqtt:
        text += "\n" + (toml_table("mqtt", mqtt) if isinstance(mqtt, Mapping) else f"[mqtt]\n{mqtt}\n")
    for name, table in (sections or {}).items():
        text += "\n" + toml_table(name, table)
    return text + sources


def mqtt_toml(port: int, extra: str = "") -> str:
    """The body of an [mqtt] table for a test broker on loopback, reconnecting quickly."""
    return f'url = "mqtt://127.0.0.1:{port}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 1\n{extra}'


def toml_entry(name: str, table: Table) -> str:
    """One `[[name]]` entry of an array of tables."""
    header, _, body = toml_table(name, table).partition("\n")
    return f"[{header}]\n{body}"


def source_toml(
    kind: str, source_id: str, parts: str = "", entries: Sequence[Table] = (), **keys: object
) -> str:
    """One `[[sources]]` entry of type `kind` with its `[[sources.<parts>]]` (meters, sensors)."""
    text = "\n" + toml_entry("sources", {"id": source_id, "type": kind, **keys})
    return text + "".join("\n" + toml_entry(f"sources.{parts}", entry) for entry in entries)


def meter_bus_toml(
    port: int, meter: str = "m1", interval_s: float = 0.5, read: tuple[str, ...] | None = ("power_w",)
) -> str:
    """`[[sources]]` bus-1 on a Modbus TCP simulator with one SDM120 (unit 1) read for `read`
    (None: the profile's default points)."""
    meter_table: dict[str, object] = {"id": meter, "unit": 1, "profile": "eastron_sdm120"}
    if read is not None:
        meter_table["read"] = list(read)
    endpoint = f"tcp://127.0.0.1:{port}"
    return source_toml("modbus", "bus-1", "meters", [meter_table], endpoint=endpoint, interval_s=interval_s)


def commands_toml(allow: Sequence[str], operators: Sequence[Table] = (), **keys: object) -> str:
    """`[commands]` allowing `allow` (more keys, e.g. max_per_minute, as keywords) with its
    `[[commands.operators]]` entries. `clock_sync = "assume"`: test machines run no time daemon,
    and a gateway refuses signed commands while the kernel says its clock is not synchronised."""
    text = "\n" + toml_table("commands", {"allow": list(allow), "clock_sync": "assume", **keys})
    return text + "".join("\n" + toml_entry("commands.operators", op) for op in operators)


def threshold_rule_toml(source: str, above: float, rule_id: str = "overload") -> str:
    return f"""
[[rules]]
id = "{rule_id}"
type = "threshold"
source = "{source}"
point = "power_w"
above = {above}
"""


def door_toml(door: str = "lobby", *, coil: int = 0, pulse_s: float | None = None, **relay: object) -> str:
    """`[[doors]]` `door` on coil `coil` of the relay board at unit 9 of bus-1 (more relay keys,
    e.g. timeout_ms, as keywords)."""
    table: dict[str, object] = {"id": door}
    if pulse_s is not None:
        table["pulse_s"] = pulse_s
    table["relay"] = {"type": "modbus_coil", "bus": "bus-1", "unit": 9, "coil": coil, **relay}
    return "\n" + toml_entry("doors", table)
