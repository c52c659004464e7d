"""`lintel ble scan` and `lintel ble check-key`: what an installer needs at a door with a laptop.

Both talk to BlueZ directly (they do not need the daemon, and work while it runs: BlueZ shares the
adapter between scanners).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.live import Live

from drivers.ble.adverts import Advert, Decoded, Undecodable, mac_bytes
from drivers.ble.config import KEY_EXPECTED, parse_key
from drivers.ble.decode import decode_advert
from drivers.ble.scanner import BleakAdvertScanner, ScannerError
from gateway.cli.args import action, tool
from gateway.cli.output import console, err_console, esc, print_json, table


def add_parsers(sub: Any) -> None:
    actions = tool(sub, "ble", "installer tools for BLE door sensors (scan, check-key)")
    q = action(
        actions, "scan", "list nearby sensors live: address, type, state, RSSI, encrypted", config=False
    )
    q.add_argument("--seconds", type=float, default=20.0, help="how long to listen (default 20)")
    q.add_argument("--adapter", default="hci0")
    q.add_argument("--all", action="store_true", help="also list devices in formats we do not decode")
    q = action(
        actions,
        "check-key",
        "wait for one advert of a sensor and say whether a key decrypts it",
        config=False,
        json=False,
    )
    q.add_argument("address", help="the sensor's Bluetooth address, e.g. E4:AA:EC:81:21:AE")
    q.add_argument("key", help="the bindkey (32 hex digits) or a file holding it")
    q.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for an advert (default 60)")
    q.add_argument("--adapter", default="hci0")


@dataclass
class _Seen:
    address: str
    name: str | None = None
    rssi: int = 0
    adverts: int = 0
    format: str | None = None
    model: str | None = None
    encrypted: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    def update(self, advert: Advert, result: Decoded | Undecodable | None) -> None:
        self.adverts += 1
        self.rssi = advert.rssi
        self.name = advert.name or self.name
        if isinstance(result, Decoded):
            self.format, self.model, self.encrypted = (
                result.format,
                result.model or self.model,
                result.encrypted,
            )
            self.state, self.problem = dict(result.values), None
        elif isinstance(result, Undecodable):
            self.format, self.encrypted, self.model = (
                result.format,
                result.encrypted,
                result.model or self.model,
            )
            self.problem = "encrypted: key needed" if result.reason == "no_key" else result.detail


def _decode(advert: Advert, key: bytes | None = None) -> Decoded | Undecodable | None:
    try:
        mac = mac_bytes(advert.address)
    except ValueError:
        return None
    return decode_advert(advert, mac, key)


async def _listen(adapter: str, seconds: float, on_advert: Any, done: Any = lambda: False) -> None:
    # Active scanning: an installer wants every sensor in range, and scan responses carry names.
    scanner = BleakAdvertScanner(adapter, "active")
    await scanner.start(on_advert)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not done():
            await asyncio.sleep(0.1)
    finally:
        await scanner.stop()


def _render(seen: dict[str, _Seen], show_all: bool) -> Any:
    t = table("Nearby BLE sensors", ["address", "name", "type", "state", "RSSI", "encrypted", "adverts"])
    for s in sorted(seen.values(), key=lambda s: -s.rssi):
        if s.format is None and not show_all:
            continue
        kind = " ".join(x for x in (s.format, s.model) if x) or "-"
        state = s.problem or ", ".join(f"{k}={v}" for k, v in s.state.items()) or "-"
        t.add_row(
            esc(s.address),
            esc(s.name or ""),
            esc(kind),
            esc(state),
            f"{s.rssi} dBm",
            "yes" if s.encrypted else "no",
            str(s.adverts),
        )
    return t


def cmd_scan(args: argparse.Namespace) -> int:
    seen: dict[str, _Seen] = {}

    def on_advert(advert: Advert) -> None:
        seen.setdefault(advert.address, _Seen(advert.address)).update(advert, _decode(advert))

    try:
        if args.json:
            asyncio.run(_listen(args.adapter, args.seconds, on_advert))
        else:
            with Live(_render(seen, args.all), console=console, refresh_per_second=2) as live:

                async def run() -> None:
                    task = asyncio.create_task(_listen(args.adapter, args.seconds, on_advert))
                    while not task.done():
                        live.update(_render(seen, args.all))
                        await asyncio.sleep(0.5)
                    await task

                asyncio.run(run())
    except ScannerError as exc:
        err_console.print(f"[red]cannot scan on {esc(args.adapter)}:[/red] {esc(exc)}")
        return 1
    rows = [vars(s) for s in seen.values() if s.format is not None or args.all]
    if args.json:
        print_json(rows)
    else:
        console.print(f"{len(rows)} sensor(s) heard in {args.seconds:.0f} s")
    return 0


def _read_key(text: str) -> bytes:
    path = Path(text)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    return parse_key(text)


def cmd_check_key(args: argparse.Namespace) -> int:
    address = args.address.strip().upper()
    try:
        key = _read_key(args.key)
        mac_bytes(address)
    except (ValueError, OSError) as exc:
        err_console.print(f"[red]{esc(exc)}[/red] (key: {esc(KEY_EXPECTED)})")
        return 2
    found: list[tuple[Advert, Decoded | Undecodable]] = []

    def on_advert(advert: Advert) -> None:
        if advert.address == address and not found:
            result = _decode(advert, key)
            if result is not None:
                found.append((advert, result))

    console.print(
        f"waiting up to {args.timeout:.0f} s for an advert from {esc(address)} (open or close the door)…"
    )
    try:
        asyncio.run(_listen(args.adapter, args.timeout, on_advert, lambda: bool(found)))
    except ScannerError as exc:
        err_console.print(f"[red]cannot scan on {esc(args.adapter)}:[/red] {esc(exc)}")
        return 2
    if not found:
        console.print(
            f"[yellow]no advert from {esc(address)} in {args.timeout:.0f} s[/yellow]: "
            "is it in range, and awake?"
        )
        return 2
    advert, result = found[0]
    if isinstance(result, Decoded) and result.authenticated:
        values = ", ".join(f"{k}={v}" for k, v in result.values.items())
        console.print(
            f"[green]key OK[/green]: {esc(result.format)} advert decrypted ({esc(values)}), "
            f"RSSI {advert.rssi} dBm"
        )
        return 0
    if isinstance(result, Decoded):
        console.print(f"advert is not encrypted ({esc(result.format)}): no key needed")
        return 0
    if result.reason == "wrong_key":
        console.print(
            f"[red]wrong key[/red]: the {esc(result.format)} advert is encrypted and this key "
            "does not decrypt it"
        )
        return 1
    console.print(f"[red]cannot check[/red]: {esc(result.detail)}")
    return 1


def cmd_ble(args: argparse.Namespace) -> int:
    if args.ble_command == "scan":
        return cmd_scan(args)
    return cmd_check_key(args)
