"""The local control socket: `lintel alarms ack` and friends talk to the running daemon here.

A Unix socket `<runtime_dir>/control.sock` (mode 0660: the service user and its group; a
technician uses sudo). One request per connection: a command envelope as one JSON line, answered
by the command result as one JSON line. The same router as the MQTT commands runs it, with origin
`local`, so schema, freshness and the audit trail (the result is also sent upstream) are the same;
signatures, roles and the allow-list do not apply, the socket's permissions being the authorisation,
and the command is audited as `local` (or the technician's `--by` name, with origin `local`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from gateway.commands.envelope import MAX_COMMAND_BYTES
from gateway.commands.router import LOCAL, CommandRouter

log = logging.getLogger("lintel.control")

SOCKET_NAME = "control.sock"


class ControlServer:
    def __init__(self, path: Path, router: CommandRouter) -> None:
        self.path = path
        self.router = router
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a crashed run
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_COMMAND_BYTES + 2
            )
            os.chmod(self.path, 0o660)
        except OSError as exc:
            log.warning("no local control socket at %s: %s (lintel alarms ack will not work)", self.path, exc)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            body = await self.router.handle(line.strip(), LOCAL)
            answer = (
                body if body is not None else {"outcome": "rejected", "reason": "flood: too many commands"}
            )
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError) as exc:
            log.debug("control connection dropped: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def send_local(path: Path, envelope: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
    """Client side (the CLI): send one command, wait for its result. Raises OSError if no daemon."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(json.dumps(envelope).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    result: dict[str, Any] = json.loads(data)
    return result
