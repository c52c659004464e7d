"""One Modbus TCP connection that keeps several transactions in flight (the gateway's own, not pymodbus's).

pymodbus serialises every request of a client behind one lock, and spends an `asyncio.wait_for`
task and timer, a PDU object and a log-formatting call on each. On Modbus TCP a poll cycle is
dominated by that per-request overhead, not by the wire, and a TCP gateway in front of several meters
can answer requests to different unit ids at once. This link:

- sends each request as one MBAP frame with its own transaction id; frames queued in the same turn of
  the event loop leave in one `write()` (one system call for several meters' requests);
- pairs replies with requests by transaction id, so replies may come in any order; a reply to a
  request that already timed out is counted (`late`) and dropped;
- times each request out with one timer handle (no task, no context manager);
- never parses more than one frame's declared length (at most 260 bytes) ahead: a length outside the
  protocol's limits or a protocol id that is not 0 means the stream is out of step, and the
  connection is closed (every waiting request fails as `bad_frame`, the next as `disconnected`).

How many requests are in flight is the bus's business (`Bus(max_inflight=...)`); this link does not
limit it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from drivers.modbus import mbap

log = logging.getLogger("lintel.modbus")


class LinkDown(Exception):
    """The connection is gone (or never came up)."""


class LinkTimeout(Exception):
    def __init__(self, received: int) -> None:
        super().__init__()
        self.received = received  # bytes that arrived while waiting without completing a frame


class LinkGarbage(Exception):
    """The byte stream no longer parses as MBAP frames."""


@dataclass
class _Pending:
    unit: int
    pdu: bytes
    future: asyncio.Future[bytes]
    timer: asyncio.TimerHandle | None = None


class TcpLink(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._pending: dict[int, _Pending] = {}
        self._next_tid = 0
        self._out: list[bytes] = []
        self._buffer = b""
        self._received = 0  # bytes that arrived since the last complete frame
        self.late = 0  # replies to requests that had already timed out
        self.closed: asyncio.Future[None] = self._loop.create_future()

    @classmethod
    async def connect(cls, host: str, port: int, timeout_s: float) -> TcpLink:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, link = await loop.create_connection(cls, host, port)
        except (TimeoutError, OSError) as exc:
            raise LinkDown(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from None
        return link

    @property
    def outstanding(self) -> int:
        """Requests sent (or queued to send) and not yet answered."""
        return len(self._pending)

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- requests ---------------------------------------------------------------------------------

    async def exchange(self, unit: int, pdu: bytes, timeout_s: float) -> bytes:
        """Send `pdu` to `unit`; the reply PDU. Raises LinkDown, LinkTimeout or LinkGarbage."""
        if not self.connected:
            raise LinkDown("not connected")
        tid = self._next_tid = (self._next_tid + 1) & 0xFFFF
        while tid in self._pending:  # 65,536 outstanding requests do not happen; stay correct anyway
            tid = self._next_tid = (tid + 1) & 0xFFFF
        future: asyncio.Future[bytes] = self._loop.create_future()
        pending = self._pending[tid] = _Pending(unit, pdu, future)
        pending.timer = self._loop.call_later(timeout_s, self._expire, tid)
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(mbap.frame(tid, unit, pdu))
        try:
            return await future
        finally:
            pending.timer.cancel()
            self._pending.pop(tid, None)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(out) if len(out) > 1 else out[0])

    def _expire(self, tid: int) -> None:
        pending = self._pending.pop(tid, None)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(LinkTimeout(self._received))

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        self._received += len(data)
        at, end = 0, len(buffer)
        header = mbap.HEADER
        while end - at >= 7:
            tid, protocol, length, unit = header.unpack_from(buffer, at)
            if protocol != 0 or not 2 <= length <= mbap.MAX_PDU + 1:
                self._garbage(f"protocol id {protocol}, length {length}")
                return
            if end - at < 6 + length:
                break
            pdu = buffer[at + 7 : at + 6 + length]
            at += 6 + length
            self._received = 0
            pending = self._pending.pop(tid, None)
            if pending is None or pending.future.done():
                self.late += 1
                continue
            if unit != pending.unit:
                pending.future.set_exception(
                    LinkGarbage(f"reply from unit {unit} to a request for {pending.unit}")
                )
                continue
            pending.future.set_result(pdu)
        self._buffer = buffer[at:]

    def _garbage(self, why: str) -> None:
        log.warning("modbus tcp: stream out of step (%s): closing the connection", why)
        self._fail_all(LinkGarbage(why))
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail_all(LinkDown(str(exc) if exc else "connection closed by the device"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail_all(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(exc)
