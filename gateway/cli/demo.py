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

from rich.live import Live
from rich.text import Text

from gateway.cli.dashboard import outbox_oldest_ms, render
from gateway.cli.dashboard_panels import Decision
from gateway.cli.demo_building import demo_config, demo_config_path, enrol_demo_resident
from gateway.cli.demo_devices import demo_meter_server, free_tcp_port
from gateway.cli.logs import setup_logging
from gateway.cli.output import console, err_console, esc
from gateway.cli.run import EXIT_BUSY
from gateway.core import ConfigError, Event, Record


class DemoView:
    """Counts the records the demo's daemon produces and keeps the face entrances' last decisions
    (status.json has their counts only); the screen itself is the dashboard's."""

    def __init__(self) -> None:
        self.decisions: deque[Decision] = deque(maxlen=4)
        self.count = 0

    def observe(self, record: Record) -> None:
        self.count += 1
        if isinstance(record, Event) and record.kind in ("access_granted", "access_denied", "access_lockout"):
            who = record.attrs.get("resident_id") or record.attrs.get("reason")
            self.decisions.append(
                Decision(record.source_id, record.kind, record.ts_ms, str(who) if who else None)
            )


def cmd_demo(args: argparse.Namespace) -> int:
    setup_logging("warning")
    from gateway.runtime.state_lock import StateFolderBusy, lock_state_folder

    try:  # one daemon per folder (a `lintel run` or another demo there would clash): before writing
        lock = lock_state_folder(Path(args.state_dir))
    except StateFolderBusy as exc:
        err_console.print(f"[red]not starting[/]: {esc(exc)}", highlight=False)
        return EXIT_BUSY  # EX_TEMPFAIL, as `lintel run`
    except OSError as exc:
        err_console.print(f"[red]cannot use --state-dir[/] {esc(args.state_dir)}: {esc(exc)}")
        return 1
    try:
        modbus_port = free_tcp_port()
        extra = Path(args.config_extra).read_text() if args.config_extra else ""
        loaded = demo_config(
            Path(args.state_dir),
            args.broker,
            modbus_port,
            write=True,
            site=args.site,
            gateway_id=args.gateway_id,
            extra=extra,
        )
        config_path = demo_config_path(Path(args.state_dir))
        enrol_demo_resident(loaded)
    except ConfigError as exc:
        err_console.print(f"[red]demo config invalid[/]:\n{esc(exc)}", highlight=False)
        return 1
    except OSError as exc:
        err_console.print(f"[red]cannot read --config-extra[/]: {exc}", highlight=False)
        return 1
    from gateway.runtime.daemon import Daemon

    view = DemoView()
    daemon = Daemon(loaded, observers=[view.observe])
    live = sys.stdout.isatty() and not args.plain
    console.print(
        f"[bold]Lintel demo[/]: simulated building {esc(loaded.config.gateway.site)}, "
        f"outbox {esc(loaded.outbox_path)}"
        + (f", publishing to {esc(args.broker)}" if args.broker else ", no broker (buffering locally)")
        + f"\nIn another terminal: lintel status -c {esc(config_path)}  (or --watch)",
        highlight=False,
    )
    hint = f"[dim]another terminal:[/] lintel status -c {config_path}"

    async def main() -> None:
        daemon.install_signal_handlers()
        meters = demo_meter_server()
        await meters.start_tcp(port=modbus_port)
        runner = asyncio.create_task(daemon.run())
        started = time.monotonic()
        stopping = False
        live_screen = Live(console=console, refresh_per_second=4, screen=True, auto_refresh=False)
        with live_screen if live else contextlib.nullcontext() as screen:
            while not runner.done():
                if screen is not None:
                    size = console.size
                    # one line when it fits, else the command gets a line of its own
                    one_line = len(Text.from_markup(hint).plain) + 16 <= size.width
                    footer = f"{hint} [dim]· Ctrl-C stops[/]" if one_line else f"{hint}\n[dim]Ctrl-C stops[/]"
                    screen.update(
                        render(
                            daemon.report(),
                            width=size.width,
                            height=size.height,
                            decisions=list(view.decisions),
                            oldest_ms=outbox_oldest_ms(loaded.outbox_path),
                            footer=footer,
                        ),
                        refresh=True,
                    )
                else:
                    status = daemon.status_body()
                    ob, up = status["outbox"], status["uplink"]
                    print(
                        f"records={view.count} backlog={sum(ob['rows'].values())} last_seq={ob['last_seq']} "
                        f"uplink={up['state']} sent={up.get('sent', 0)} acked={up.get('acked', 0)} "
                        f"alarms={[a['alarm_id'] for a in status['alarms']]}",
                        flush=True,
                    )
                if args.seconds and not stopping and time.monotonic() - started >= args.seconds:
                    # Once: a graceful stop can outlast this loop's 2 s turn on a busy machine, and
                    # a second request is the daemon's "stop now" (a forced exit, status 1).
                    daemon.request_stop()
                    stopping = True
                await asyncio.wait({runner}, timeout=0.5 if live else 2.0)
        try:
            await runner
        finally:
            await meters.stop()

    logging.getLogger("lintel").setLevel(logging.WARNING)
    asyncio.run(main())
    lock.release()
    status = daemon.status_body()
    console.print(
        f"demo stopped: {esc(view.count)} records, last seq {esc(status['outbox']['last_seq'])}, "
        f"outbox backlog {esc(sum(status['outbox']['rows'].values()))} messages; "
        f"its config stays in {esc(config_path)}",
        highlight=False,
    )
    return 0
