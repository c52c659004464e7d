"""`lintel doors probe DOOR [--write]`: read a Shelly relay's identity and pin it in the config.

The device answers `Shelly.GetDeviceInfo` without a password, so the probe sends none (and never
reads the password file). It prints the device's id, MAC and model; with `--write` it puts
`device_id` and `mac` into that door's `[doors.relay]` table of the config file (the rest of the file
is left as written, comments included), after which `check-config` accepts the door. A door already
pinned to another device is not overwritten: a replaced device is a decision for the installer
(remove `device_id` and probe again), an unexpected one is what pinning is for.

The config is read as TOML, not validated: a Shelly door without `device_id` is exactly the config
`check-config` refuses until this has run.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tomllib
from pathlib import Path
from typing import Any

from gateway.cli.args import action, tool
from gateway.cli.output import console, err_console, esc, print_json
from gateway.core.files import replace_durably
from gateway.lanes.doors.config import DEVICE_ID_PATTERN, ShellyGen2Relay
from gateway.lanes.doors.relays import RelayError

_MAC = re.compile(r"^[0-9A-F]{12}$")
_HEADER = re.compile(r"^\s*\[")


def add_parsers(sub: Any) -> None:
    actions = tool(sub, "doors", "door relays: pin a Shelly relay's identity")
    q = action(
        actions, "probe", "read a Shelly door relay's id and MAC (no password sent); --write pins them"
    )
    q.add_argument("door", help="the door's id in the config")
    q.add_argument(
        "--write", action="store_true", help="write device_id and mac into the door's [doors.relay]"
    )
    q.add_argument("--timeout-ms", type=int, default=3000, help="reply timeout (default 3000)")


def cmd_doors(args: argparse.Namespace) -> int:
    path = Path(args.config)
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        err_console.print(f"[red]cannot read config[/] {esc(path)}: {esc(exc)}", highlight=False)
        return 2
    relay = next(
        (d.get("relay") for d in doc.get("doors", []) if isinstance(d, dict) and d.get("id") == args.door),
        None,
    )
    if (
        not isinstance(relay, dict)
        or relay.get("type") != "shelly_gen2"
        or not isinstance(relay.get("url"), str)
    ):
        err_console.print(f"[red]no Shelly door {esc(repr(args.door))} in {esc(path)}[/]", highlight=False)
        return 2
    try:
        info = asyncio.run(_device_info(relay["url"], args.timeout_ms))
    except RelayError as exc:
        err_console.print(f"[red]cannot probe[/] {esc(exc)}", highlight=False)
        return 1
    device_id, mac = info.get("id"), info.get("mac")
    if not (isinstance(device_id, str) and re.match(DEVICE_ID_PATTERN, device_id)) or not (
        isinstance(mac, str) and _MAC.match(mac)
    ):
        err_console.print("[red]the device's reply has no usable id and MAC: is it a Shelly Gen2?[/]")
        return 1
    pinned = relay.get("device_id")
    body = {
        "door": args.door,
        "url": relay["url"],
        "device_id": device_id,
        "mac": mac,
        "model": info.get("model"),
    }
    if pinned is not None and pinned != device_id:
        err_console.print(
            f"[red]the device at {esc(relay['url'])} is {esc(device_id)}, but the config pins "
            f"{esc(pinned)}[/]: if the device was replaced on purpose, remove device_id and probe again; "
            "otherwise something else answers on the relay's address",
            highlight=False,
        )
        return 1
    if args.json:
        print_json(body)
    else:
        console.print(
            f"door {esc(args.door)}: {esc(relay['url'])} is {esc(device_id)} (MAC {esc(mac)}, "
            f"model {esc(info.get('model'))})",
            highlight=False,
        )
    if args.write:
        replace_durably(path, pin(text, args.door, device_id, mac).encode())
        if not args.json:
            console.print(f"pinned in {esc(path)}: run lintel check-config", highlight=False)
    elif not args.json:
        console.print(
            f'add to its [doors.relay]: device_id = "{esc(device_id)}" and mac = "{esc(mac)}" (or --write)'
        )
    return 0


async def _device_info(url: str, timeout_ms: int) -> dict[str, Any]:
    from gateway.lanes.doors.shelly import ShellyRelay

    # Unvalidated on purpose (no password_file, no device_id yet): ShellyRelay without a password
    # never answers a challenge, so nothing secret can leave.
    config = ShellyGen2Relay.model_construct(
        type="shelly_gen2",
        url=url,
        switch=0,
        password_file=None,
        device_id=None,
        mac=None,
        timeout_ms=timeout_ms,
    )
    return await ShellyRelay(config, None).device_info()


def pin(text: str, door: str, device_id: str, mac: str) -> str:
    """The config text with `device_id`/`mac` set in the `[doors.relay]` table of `door`."""
    lines = text.splitlines(keepends=True)
    door_at = _door_table(lines, door)
    relay_at = next(
        i for i in range(door_at + 1, len(lines)) if lines[i].strip().replace(" ", "") == "[doors.relay]"
    )
    end = next((i for i in range(relay_at + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
    body = [line for line in lines[relay_at + 1 : end] if not re.match(r"^\s*(device_id|mac)\s*=", line)]
    k = len(body)
    while k and not body[k - 1].strip():  # blank lines before the next table stay after the pins
        k -= 1
    content, blanks = body[:k], body[k:]
    if content and not content[-1].endswith("\n"):
        content[-1] += "\n"
    added = [f'device_id = "{device_id}"\n', f'mac = "{mac}"\n']
    return "".join([*lines[: relay_at + 1], *content, *added, *blanks, *lines[end:]])


def _door_table(lines: list[str], door: str) -> int:
    wanted = re.compile(rf'^\s*id\s*=\s*["\']{re.escape(door)}["\']\s*(#.*)?$')
    for i, line in enumerate(lines):
        if line.strip().replace(" ", "") != "[[doors]]":
            continue
        for j in range(i + 1, len(lines)):
            if _HEADER.match(lines[j]):
                break
            if wanted.match(lines[j]):
                return i
    raise ValueError(f"no [[doors]] table with id {door!r}")
