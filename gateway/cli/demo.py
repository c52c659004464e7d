"""`lintel demo`: a simulated building, end to end, shown live in the terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gateway.cli.logs import setup_logging
from gateway.cli.output import console, err_console, human_bytes
from gateway.core import ConfigError, Event, Reading, Record
from gateway.demo import demo_config, demo_meter_server, enrol_demo_resident, free_tcp_port


class DemoView:
    """Keeps the latest value per point and the recent events, and renders them."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str], Any] = {}
        self.events: deque[Event] = deque(maxlen=8)
        self.count = 0

    def observe(self, record: Record) -> None:
        self.count += 1
        if isinstance(record, Reading):
            self.latest[(record.source_id, record.point)] = record.value
        else:
            self.events.append(record)

    def render(self, status: dict[str, Any]) -> Group:
        readings = Table(title="live readings", title_justify="left", header_style="bold")
        for col in ("source", "point", "value"):
            readings.add_column(col)
        for (source, point), value in sorted(self.latest.items()):
            readings.add_row(source, point, str(value))
        events = Table(title="recent events", title_justify="left", header_style="bold")
        for col in ("time", "source", "event", "severity"):
            events.add_column(col)
        for e in reversed(self.events):
            style = "bold red" if e.severity == "alarm" else ""
            events.add_row(
                time.strftime("%H:%M:%S", time.localtime(e.ts_ms / 1000)),
                e.source_id,
                Text(e.kind, style),
                e.severity,
            )
        comps = Table(title="components", title_justify="left", header_style="bold")
        for col in ("component", "state", "restarts", "last error"):
            comps.add_column(col)
        for c in status["components"]:
            comps.add_row(c["name"], c["state"], str(c["restarts"]), c["last_error"] or "")
        ob, up = status["outbox"], status["uplink"]
        backlog = sum(ob["rows"].values())
        footer = Text(
            f"records {self.count}  outbox backlog {backlog} messages "
            f"({human_bytes(sum(ob['bytes'].values()))}), "
            f"last seq {ob['last_seq']}  uplink {up['state']}"
            + (
                f" sent {up['sent']} acked {up['acked']}"
                if up["state"] != "disabled"
                else " (no broker: buffering)"
            )
            + "   Ctrl-C to stop"
        )
        return Group(readings, events, comps, footer)


def cmd_demo(args: argparse.Namespace) -> int:
    setup_logging("warning")
    try:
        modbus_port = free_tcp_port()
        loaded = demo_config(Path(args.state_dir), args.broker, modbus_port)
        enrol_demo_resident(loaded)
    except ConfigError as exc:
        err_console.print(f"[red]demo config invalid[/]:\n{exc}", highlight=False)
        return 1
    from gateway.runtime.daemon import Daemon

    view = DemoView()
    daemon = Daemon(loaded, observers=[view.observe])
    live = sys.stdout.isatty() and not args.plain
    console.print(
        f"[bold]Lintel demo[/]: simulated building {loaded.config.gateway.site}, outbox {loaded.outbox_path}"
        + (f", publishing to {args.broker}" if args.broker else ", no broker (buffering locally)"),
        highlight=False,
    )

    async def main() -> None:
        daemon.install_signal_handlers()
        meters = demo_meter_server()
        await meters.start_tcp(port=modbus_port)
        runner = asyncio.create_task(daemon.run())
        started = time.monotonic()
        with Live(console=console, refresh_per_second=4) if live else contextlib.nullcontext() as screen:
            while not runner.done():
                status = daemon.status_body()
                if screen is not None:
                    screen.update(view.render(status))
                else:
                    ob, up = status["outbox"], status["uplink"]
                    print(
                        f"records={view.count} backlog={sum(ob['rows'].values())} last_seq={ob['last_seq']} "
                        f"uplink={up['state']} sent={up.get('sent', 0)} acked={up.get('acked', 0)} "
                        f"events={[e.kind for e in list(view.events)[-3:]]}",
                        flush=True,
                    )
                if args.seconds and time.monotonic() - started >= args.seconds:
                    daemon.request_stop()
                await asyncio.wait({runner}, timeout=0.5 if live else 2.0)
        try:
            await runner
        finally:
            await meters.stop()

    logging.getLogger("lintel").setLevel(logging.WARNING)
    asyncio.run(main())
    status = daemon.status_body()
    console.print(
        f"demo stopped: {view.count} records, last seq {status['outbox']['last_seq']}, "
        f"outbox backlog {sum(status['outbox']['rows'].values())} messages",
        highlight=False,
    )
    return 0
