"""A minimal HTTP/1.1 client for one JSON POST to a device on the local network (standard library).

Devices on the building's LAN are untrusted input: the head and the body are read within fixed
bounds (`MAX_HEAD`, `MAX_BODY`) before anything is parsed, so a hostile or broken device cannot make
the gateway buffer without limit. One connection per request (`Connection: close`): a door pulse
is rare, and a fresh connection never inherits a half-read reply. The caller bounds the time
(`asyncio.timeout`); cancelling closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

MAX_HEAD = 8 * 1024
MAX_BODY = 16 * 1024
_STATUS = re.compile(r"HTTP/1\.[01] ([0-9]{3})(?: .*)?")
_DECIMAL = re.compile(r"[0-9]{1,9}")
_HEX = re.compile(rb"[0-9a-fA-F]{1,8}")


class HttpError(Exception):
    """The exchange failed or the reply is not acceptable HTTP (the message says how)."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes


async def post_json(host: str, port: int, path: str, payload: dict[str, Any]) -> Reply:
    """POST `payload` as JSON to http://host:port/path and return the bounded reply."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    host_header = f"[{host}]" if ":" in host else host
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host_header}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nUser-Agent: lintel\r\n\r\n"
    ).encode() + body
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEAD)
    except OSError as exc:
        raise HttpError(f"cannot connect: {exc.strerror or exc}") from None
    try:
        writer.write(request)
        await writer.drain()
        return await _read_reply(reader)
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise HttpError(
            f"connection lost: {exc.strerror if isinstance(exc, OSError) else 'closed early'}"
        ) from None
    finally:
        writer.close()


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(f"reply head longer than {MAX_HEAD} bytes") from None
    except asyncio.IncompleteReadError as exc:
        if len(exc.partial) >= MAX_HEAD:
            raise HttpError(f"reply head longer than {MAX_HEAD} bytes") from None
        raise HttpError("connection closed before a complete reply head") from None
    lines = head.decode("latin-1").split("\r\n")
    status = _STATUS.fullmatch(lines[0])
    if status is None:
        raise HttpError("not an HTTP reply")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise HttpError("malformed header line")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        length = headers["content-length"]
        if not _DECIMAL.fullmatch(length):
            raise HttpError("malformed Content-Length")
        if int(length) > MAX_BODY:
            raise HttpError(f"reply body of {length} bytes is over the limit of {MAX_BODY}")
        body = await reader.readexactly(int(length))
    else:  # delimited by the end of the connection
        body = await reader.read(MAX_BODY + 1)
        while len(body) <= MAX_BODY and (more := await reader.read(MAX_BODY + 1 - len(body))):
            body += more
        if len(body) > MAX_BODY:
            raise HttpError(f"reply body over the limit of {MAX_BODY} bytes")
    return Reply(int(status.group(1)), headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        try:
            size_line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            raise HttpError("malformed chunk size") from None
        size_text = size_line.split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_text):
            raise HttpError("malformed chunk size")
        size = int(size_text, 16)
        if size == 0:
            return body  # trailers, if any, are left unread: the connection closes anyway
        if len(body) + size > MAX_BODY:
            raise HttpError(f"reply body over the limit of {MAX_BODY} bytes")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise HttpError("malformed chunk")
