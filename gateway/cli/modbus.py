"""Installer tools for Modbus: `lintel modbus scan|read|profiles` and `lintel probe SOURCE_ID`.

They talk to the bus directly (the daemon must not be polling the same serial port at the time: two
masters on one RS-485 line garble each other's frames; `scan` and `read` say so when the port is busy).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from drivers.modbus.bus import Bus, BusDown, RequestFailed
from drivers.modbus.config import ModbusBusConfig
from drivers.modbus.endpoint import EndpointError, parse_endpoint
from drivers.modbus.meter import MeterPoller
from drivers.modbus.profiles import PointFields, available, build_point, profile_points
from drivers.modbus.registers import decode
from gateway.cli.args import action, config_arg, json_arg, tool
from gateway.cli.config_file import read_config
from gateway.cli.output import console, err_console, esc, print_json, table
from gateway.core import Event, Reading


def add_parsers(sub: Any) -> None:
    actions = tool(sub, "modbus", "installer tools for Modbus meters (scan, read, profiles)")
    q = action(actions, "scan", "find which unit ids answer on a bus", config=False)
    _bus_args(q)
    q.add_argument("--units", default="1-247", help="unit ids to try, e.g. 1-32 or 1,5,9 (default 1-247)")
    q.add_argument("--register", type=lambda s: int(s, 0), default=0, help="register to ask for (default 0)")
    q.add_argument("--function", type=int, choices=[3, 4], default=3, help="3 holding or 4 input registers")
    q = action(actions, "read", "read and decode registers of one meter now", config=False)
    _bus_args(q)
    q.add_argument("--unit", type=int, required=True)
    q.add_argument("--profile", help="decode every point of this profile")
    q.add_argument("--address", type=lambda s: int(s, 0), help="or: one register address (0x48 or 72)")
    q.add_argument("--function", type=int, choices=[1, 2, 3, 4], default=3)
    q.add_argument("--type", default="uint16", help="int16 uint16 int32 uint32 float32 ... (default uint16)")
    q.add_argument("--word-order", choices=["big", "little"], default="big")
    q.add_argument("--scale", type=float, default=1.0)
    q = action(actions, "profiles", "list the shipped meter profiles and their points", config=False)
    q.add_argument("name", nargs="?", help="show one profile's points")

    p = sub.add_parser("probe", help="run one configured meter (or bus) for a few cycles and print readings")
    p.add_argument("source_id", help="a meter id or a bus id from the config")
    p.add_argument("--cycles", type=int, default=3)
    config_arg(p)
    json_arg(p)


def _bus_args(q: argparse.ArgumentParser) -> None:
    q.add_argument("--port", help="serial device, e.g. /dev/serial/by-id/usb-FTDI...")
    q.add_argument("--baud", type=int, default=9600)
    q.add_argument("--parity", choices=["N", "E", "O"], default="N")
    q.add_argument("--endpoint", help="or a full endpoint: tcp://host:502, rtu+tcp://host:4001")
    q.add_argument("--timeout-ms", type=int, default=200)


def _endpoint(args: argparse.Namespace) -> str:
    if args.endpoint:
        return str(args.endpoint)
    if not args.port:
        raise EndpointError("give --port /dev/... or --endpoint tcp://host:502")
    return f"rtu://{args.port}?baudrate={args.baud}&parity={args.parity}"


def _units(text: str) -> list[int]:
    units: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        units.extend(range(int(lo), int(hi or lo) + 1))
    if not units or min(units) < 1 or max(units) > 255:
        raise ValueError("unit ids are 1-255")
    return units


def cmd_modbus(args: argparse.Namespace) -> int:
    if args.modbus_command == "profiles":
        return _profiles(args)
    try:
        endpoint = parse_endpoint(_endpoint(args))
    except EndpointError as exc:
        err_console.print(f"[red]bad endpoint[/]: {esc(exc)}", highlight=False)
        return 2
    try:
        return asyncio.run(_scan(args, endpoint) if args.modbus_command == "scan" else _read(args, endpoint))
    except BusDown as exc:
        err_console.print(
            f"[red]{esc(exc)}[/] (is the adapter plugged in? is the daemon using this port?)", highlight=False
        )
        return 1


async def _scan(args: argparse.Namespace, endpoint: Any) -> int:
    units = _units(args.units)
    bus = Bus(endpoint)
    await bus.open()
    found: list[dict[str, Any]] = []
    columns = (TextColumn("scanning {task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console, transient=True, disable=args.json) as progress:
        task = progress.add_task(str(endpoint), total=len(units))
        for unit in units:
            try:
                await bus.read(unit, args.function, args.register, 1, timeout_s=args.timeout_ms / 1000)
                found.append({"unit": unit, "answer": "ok"})
            except RequestFailed as exc:
                # Something answered at this id, unless a TCP gateway says no device is behind it.
                if exc.reason == "bad_frame" or (exc.reason == "exception" and exc.code not in (10, 11)):
                    found.append({"unit": unit, "answer": str(exc)})
            progress.advance(task)
    bus.close()
    if args.json:
        print_json({"endpoint": str(endpoint), "found": found})
        return 0 if found else 1
    t = table(f"Units answering on {esc(endpoint)}", ["unit", "answer"])
    for row in found:
        t.add_row(str(row["unit"]), esc(row["answer"]))
    console.print(
        t if found else "[yellow]no unit answered[/] (check wiring A/B, baud rate, parity, termination)"
    )
    return 0 if found else 1


async def _read(args: argparse.Namespace, endpoint: Any) -> int:
    if args.profile:
        if args.profile not in available():
            err_console.print(
                f"[red]unknown profile[/] {esc(repr(args.profile))}: one of {esc(', '.join(available()))}",
                highlight=False,
            )
            return 2
        points = profile_points(args.profile)
    elif args.address is not None:
        fields = PointFields(
            function=args.function,
            address=args.address,
            type=args.type,
            word_order=args.word_order,
            scale=args.scale,
        )
        points = [build_point(f"register_{args.address}", fields)]
    else:
        err_console.print("[red]give --profile NAME or --address A[/]")
        return 2
    bus = Bus(endpoint)
    await bus.open()
    rows: list[dict[str, Any]] = []
    for point in points:
        spec = point.spec
        try:
            data = await bus.read(
                args.unit, spec.function, spec.address, spec.size, timeout_s=args.timeout_ms / 1000
            )
            rows.append(
                {"point": spec.name, "address": spec.address, "raw": list(data), "value": decode(spec, data)}
            )
        except RequestFailed as exc:
            rows.append(
                {"point": spec.name, "address": spec.address, "raw": None, "value": None, "error": str(exc)}
            )
    bus.close()
    if args.json:
        print_json({"unit": args.unit, "readings": rows})
    else:
        t = table(f"Unit {esc(args.unit)} on {esc(endpoint)}", ["point", "address", "raw registers", "value"])
        for r in rows:
            raw = " ".join(
                f"{w:04X}" if isinstance(w, int) and not isinstance(w, bool) else str(w)
                for w in r["raw"] or []
            )
            t.add_row(
                esc(r["point"]),
                f"0x{r['address']:04X}",
                esc(raw or "-"),
                str(r["value"]) if r.get("error") is None else f"[red]{esc(r['error'])}[/]",
            )
        console.print(t)
    return 0 if all("error" not in r for r in rows) else 1


def _profiles(args: argparse.Namespace) -> int:
    profiles = available()
    if args.name and args.name not in profiles:
        err_console.print(
            f"[red]unknown profile[/] {esc(repr(args.name))}: one of {esc(', '.join(profiles))}",
            highlight=False,
        )
        return 2
    if args.json:
        print_json(
            {
                n: {
                    "title": p.title,
                    "document": p.document,
                    "points": list(p.points),
                    "unverified": {
                        pt: p.unverified_reasons(pt) for pt in p.points if p.unverified_reasons(pt)
                    },
                }
                for n, p in profiles.items()
                if not args.name or n == args.name
            }
        )
        return 0
    if args.name:
        t = table(
            f"{esc(args.name)}: {esc(profiles[args.name].title)}",
            ["point", "function", "address", "type", "scale", "counter", "checked"],
        )
        profile = profiles[args.name]
        for pt in profile_points(args.name):
            s = pt.spec
            t.add_row(
                s.name,
                str(s.function),
                f"0x{s.address:04X}",
                s.type,
                f"{s.scale:g}",
                "yes" if pt.counter else "",
                "[yellow]unverified[/]" if profile.unverified_reasons(s.name) else "yes",
            )
        console.print(t)
        console.print(profile.document, highlight=False, markup=False)
        for what, why in profile.unverified.items():
            console.print(f"Unverified ({what}): {why}", highlight=False, markup=False)
        return 0
    t = table("Meter profiles", ["profile", "meter", "points"])
    for name, p in profiles.items():
        unverified = sum(1 for pt in p.points if p.unverified_reasons(pt))
        t.add_row(
            name, p.title, f"{len(p.points)} ({unverified} unverified)" if unverified else str(len(p.points))
        )
    console.print(t)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    loaded = read_config(args.config)
    if loaded is None:
        return 78
    for source in loaded.config.sources:
        if isinstance(source, ModbusBusConfig) and (
            source.id == args.source_id or any(m.id == args.source_id for m in source.meters)
        ):
            return asyncio.run(_probe(args, source))
    ids = [i for s in loaded.config.sources for _, i in s.device_ids()]
    err_console.print(
        f"[red]no Modbus meter or bus {esc(repr(args.source_id))} in the config[/] "
        f"(known: {esc(', '.join(ids))})",
        highlight=False,
    )
    return 2


async def _probe(args: argparse.Namespace, source: ModbusBusConfig) -> int:
    meters = [MeterPoller(m, source) for m in source.meters if args.source_id in (source.id, m.id)]
    bus = Bus(source.parsed_endpoint, turnaround_s=source.turnaround_ms / 1000)
    await bus.open()
    results: list[dict[str, Any]] = []
    for cycle in range(args.cycles):
        for meter in meters:
            for group in meter.groups:
                started = time.monotonic()
                records = await meter.poll(bus, group, lambda: int(time.time() * 1000), time.monotonic())
                took_ms = (time.monotonic() - started) * 1000
                for r in records:
                    if isinstance(r, Reading):
                        results.append(
                            {
                                "cycle": cycle + 1,
                                "meter": meter.id,
                                "point": r.point,
                                "value": r.value,
                                "ms": round(took_ms, 1),
                            }
                        )
                    elif isinstance(r, Event):
                        results.append(
                            {"cycle": cycle + 1, "meter": meter.id, "event": r.kind, "attrs": dict(r.attrs)}
                        )
                if meter.online is False or meter.failures_in_row:
                    results.append({"cycle": cycle + 1, "meter": meter.id, "error": meter.last_error})
        if cycle + 1 < args.cycles:
            await asyncio.sleep(1.0)
    bus.close()
    ok = all(m.failures_in_row == 0 for m in meters)
    if args.json:
        print_json(
            {
                "source": args.source_id,
                "ok": ok,
                "results": results,
                "requests_per_cycle": {m.id: m.request_count() for m in meters},
            }
        )
        return 0 if ok else 1
    t = table(
        f"probe {esc(args.source_id)} on {esc(source.parsed_endpoint)}", ["cycle", "meter", "point", "value"]
    )
    row: dict[str, Any]
    for row in results:
        if "point" in row:
            t.add_row(str(row["cycle"]), esc(row["meter"]), esc(row["point"]), esc(row["value"]))
        elif "event" in row:
            t.add_row(
                str(row["cycle"]),
                esc(row["meter"]),
                f"[yellow]{esc(row['event'])}[/]",
                str(row["attrs"].get("error", "")),
            )
        else:
            t.add_row(str(row["cycle"]), esc(row["meter"]), "[red]error[/]", esc(row["error"]))
    console.print(t)
    for m in meters:
        console.print(
            f"{esc(m.id)}: unit {esc(m.unit)}, {esc(m.request_count())} requests per cycle, "
            f"errors {esc(dict(m.errors) or 'none')}",
            highlight=False,
        )
    return 0 if ok else 1
