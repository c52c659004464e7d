"""One physical Modbus bus: a single queue of requests over pymodbus, paced like the wire.

Everything that talks on a bus goes through its `Bus`: the meter polls, the installer tools and
writes from other lanes (a door relay). The bus guarantees:
- one request on the line at a time (on Modbus TCP, up to `max_inflight`, each to its own unit id);
  writes jump the queue ahead of polls (a door should not wait for a poll cycle of 32 meters);
- the RTU silent interval (3.5 characters, `Endpoint.frame_gap_s`) plus `turnaround_s` between the
  end of one exchange and the next request, measured from the last byte seen;
- a per-request timeout and retry count chosen by the caller (per meter), so a slow meter does not
  make every meter slow;
- every failure classified (`timeout`, `bad_frame` for CRC errors and garbage, `exception` with the
  Modbus exception code, `disconnected`) and raised as `RequestFailed`; the caller counts them.

On a serial line (and RTU frames over TCP) pymodbus does the framing; we turn off its own retries and
reconnects (`retries=0`, `reconnect_delay=0`) because the gateway decides when to retry and when to
reopen the port. Modbus TCP goes through our own link (drivers/modbus/tcp_link.py), which keeps
several transactions in flight and costs a fraction of pymodbus's per-request overhead.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from drivers.modbus.coilword import CoilWord
from drivers.modbus.endpoint import Endpoint
from drivers.modbus.mbap import COIL_WORD, Answer, BadReply, ExceptionReply, parse_reply, request_pdu
from drivers.modbus.tcp_link import LinkDown, LinkGarbage, LinkTimeout, TcpLink

# pymodbus logs every timeout and skipped frame at ERROR; the bus counts them and the meter logs
# once per state change instead.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

Reason = Literal["timeout", "bad_frame", "exception", "disconnected"]
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}
_RETRYABLE_EXCEPTIONS = {5, 6, 10, 11}


class RequestFailed(Exception):
    def __init__(self, reason: Reason, detail: str, code: int | None = None) -> None:
        super().__init__(detail)
        self.reason: Reason = reason
        self.code = code


class BusDown(Exception):
    """The port or the TCP connection is gone; the owner reopens it with backoff."""


@dataclass
class BusStats:
    requests: int = 0
    attempts: int = 0
    attempt_failures: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: collections.Counter[str] = field(default_factory=collections.Counter)


class _PriorityGate:
    """`slots` holders at a time, FIFO with two queues: waiting writes are served before waiting polls."""

    def __init__(self, slots: int = 1) -> None:
        self._free = slots
        self._waiters: dict[bool, collections.deque[asyncio.Future[None]]] = {
            True: collections.deque(),
            False: collections.deque(),
        }

    async def acquire(self, urgent: bool) -> None:
        if self._free and not self._waiters[True] and not self._waiters[False]:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[urgent].append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # we were handed a slot as we were cancelled: pass it on
            else:
                self._waiters[urgent].remove(fut)
            raise

    def release(self) -> None:
        for queue in (True, False):
            while self._waiters[queue]:
                fut = self._waiters[queue].popleft()
                if not fut.done():
                    fut.set_result(None)
                    return
        self._free += 1


class Bus:
    """`max_inflight` > 1 (Modbus TCP only) lets that many requests, to different unit ids, wait for
    their answers at once; the callers keep one request per unit id at a time (a meter polls its reads
    in order). On a serial line, or a gateway to one, there is only ever one."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        turnaround_s: float = 0.005,
        backstop_timeout_s: float = 10.0,
        max_inflight: int = 1,
    ):
        if max_inflight > 1 and endpoint.kind != "tcp":
            raise ValueError("max_inflight > 1 needs a Modbus TCP endpoint (tcp://)")
        self.endpoint = endpoint
        self.turnaround_s = turnaround_s if endpoint.serial_line else 0.0
        self.max_inflight = max_inflight
        self.stats = BusStats()
        self._backstop = backstop_timeout_s
        self._client: AsyncModbusSerialClient | AsyncModbusTcpClient | None = None
        self._link: TcpLink | None = None  # Modbus TCP: our own link (drivers/modbus/tcp_link.py)
        self._gate = _PriorityGate(max_inflight)
        self._quiet_at = 0.0  # monotonic time from which the line is free for the next request
        self._rx_bytes = 0

    # -- connection -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        if self._link is not None:
            return self._link.connected
        return self._client is not None and self._client.connected

    async def open(self) -> None:
        """Open the port / connect. Raises BusDown with the reason when it cannot."""
        self.close()
        ep = self.endpoint
        if ep.kind == "tcp":
            try:
                self._link = await TcpLink.connect(ep.host, ep.port, max(self._backstop, 3.0))
            except LinkDown as exc:
                raise BusDown(str(exc)) from None
            return
        common: dict[str, Any] = {
            "timeout": self._backstop,
            "retries": 0,
            "reconnect_delay": 0,
            "trace_packet": self._trace_packet,
        }
        client: AsyncModbusSerialClient | AsyncModbusTcpClient
        if ep.kind == "rtu":
            client = AsyncModbusSerialClient(
                ep.path,
                framer=FramerType.RTU,
                baudrate=ep.baudrate,
                parity=ep.parity,
                stopbits=ep.stopbits,
                bytesize=ep.bytesize,
                **common,
            )
        else:
            client = AsyncModbusTcpClient(ep.host, port=ep.port, framer=FramerType.RTU, **common)
        client.set_max_no_responses(1 << 30)  # never let pymodbus drop a TCP link for a dead unit
        try:
            ok = await asyncio.wait_for(client.connect(), timeout=max(self._backstop, 3.0))
        except (TimeoutError, OSError) as exc:
            client.close()
            raise BusDown(f"cannot open {ep}: {exc or 'timed out'}") from None
        if not ok:
            client.close()
            where = ep.path if ep.kind == "rtu" else f"{ep.host}:{ep.port}"
            why = "no such port or no permission" if ep.kind == "rtu" else "connection refused or unreachable"
            raise BusDown(f"cannot open {where}: {why}")
        self._client = client
        self._quiet_at = time.monotonic() + self.endpoint.frame_gap_s

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._link is not None:
            self._link.close()
            self._link = None

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            # pymodbus hands over its whole receive buffer each time: its size is what arrived.
            self._rx_bytes = max(self._rx_bytes, len(data))
            self._quiet_at = time.monotonic() + self.endpoint.frame_gap_s + self.turnaround_s
        return data

    # -- requests ---------------------------------------------------------------------------------

    async def read(
        self, unit: int, function: int, address: int, count: int, *, timeout_s: float, retries: int = 0
    ) -> list[int] | list[bool]:
        """Registers (functions 3, 4) or bits (1, 2) read from a unit; RequestFailed otherwise."""
        block = await self.read_block(unit, function, address, count, timeout_s=timeout_s, retries=retries)
        if isinstance(block, bytes):
            return list(struct.unpack(f">{count}H", block))
        return block

    async def read_block(
        self, unit: int, function: int, address: int, count: int, *, timeout_s: float, retries: int = 0
    ) -> bytes | list[bool]:
        """`read` as the wire has it: registers as big-endian bytes (two per register), bits as bools;
        a meter decodes a whole block in one pass (`ReadRequest.decode`)."""
        answer = await self._execute(unit, function, timeout_s, retries, False, address=address, count=count)
        if function in (1, 2):
            return list(answer.bits[:count])
        if len(answer.data) != 2 * count:
            raise RequestFailed("bad_frame", f"asked for {count} registers, got {len(answer.data) // 2}")
        return answer.data

    async def write_coil(
        self, unit: int, address: int, value: bool, *, timeout_s: float, retries: int = 0, verify: bool = True
    ) -> None:
        """Set a coil (a relay); with `verify`, read it back and fail if it did not take."""
        await self._execute(unit, 5, timeout_s, retries, True, address=address, value=value)
        if verify:
            got = await self._execute(unit, 1, timeout_s, retries, True, address=address, count=1)
            if bool(got.bits[0]) != bool(value):
                raise RequestFailed(
                    "exception", f"coil {address} reads back {bool(got.bits[0])} after writing {value}"
                )

    async def write_coil_word(self, unit: int, address: int, word: int, *, timeout_s: float) -> None:
        """Function 05 with a raw 16-bit value: a relay board's timed command such as "flash on for
        `word` x 100 ms" (see drivers/modbus/coilword.py). The echo must carry the same address and
        word. Sent once, never retried here: the caller decides whether to restart a board's timer."""
        answer = await self._execute(unit, COIL_WORD, timeout_s, 0, True, address=address, value=word)
        if (answer.address, answer.word) != (address, word):
            raise RequestFailed(
                "bad_frame",
                f"unit {unit}: echo {(answer.address, answer.word)} does not match the request "
                f"{(address, word)}",
            )

    async def write_registers(
        self,
        unit: int,
        address: int,
        values: Sequence[int],
        *,
        timeout_s: float,
        retries: int = 0,
        verify: bool = True,
    ) -> None:
        """Write holding registers (function 6 for one, 16 for several); verify by reading back."""
        if len(values) == 1:
            await self._execute(unit, 6, timeout_s, retries, True, address=address, value=values[0])
        else:
            await self._execute(unit, 16, timeout_s, retries, True, address=address, value=list(values))
        if verify:
            got = await self._execute(unit, 3, timeout_s, retries, True, address=address, count=len(values))
            if list(got.registers) != list(values):
                raise RequestFailed(
                    "exception",
                    f"registers {address}.. read back {list(got.registers)} after writing {list(values)}",
                )

    async def _execute(
        self, unit: int, function: int, timeout_s: float, retries: int, urgent: bool, **kwargs: Any
    ) -> Answer:
        await self._gate.acquire(urgent)
        try:
            self.stats.requests += 1
            last: RequestFailed | None = None
            for attempt in range(retries + 1):
                try:
                    if self.endpoint.kind == "tcp":
                        return await self._attempt_tcp(unit, function, timeout_s, kwargs)
                    return await self._attempt(unit, function, timeout_s, kwargs)
                except RequestFailed as exc:
                    last = exc
                    self.stats.attempt_failures[exc.reason] += 1
                    if exc.reason == "exception" and exc.code not in _RETRYABLE_EXCEPTIONS:
                        break
                    if exc.reason == "exception" and attempt < retries:
                        await asyncio.sleep(min(0.2, timeout_s))  # a busy device needs a moment
            assert last is not None
            self.stats.failures[last.reason] += 1
            raise last
        finally:
            self._gate.release()

    async def _attempt_tcp(
        self, unit: int, function: int, timeout_s: float, kwargs: dict[str, Any]
    ) -> Answer:
        link = self._link
        if link is None or not link.connected:
            raise BusDown("not connected")
        request = request_pdu(
            function, kwargs["address"], count=kwargs.get("count", 0), value=kwargs.get("value")
        )
        self.stats.attempts += 1
        try:
            reply = await link.exchange(unit, request, timeout_s)
        except LinkTimeout as exc:
            if exc.received:
                raise RequestFailed(
                    "bad_frame", f"unit {unit}: {exc.received} bytes but no complete frame"
                ) from None
            raise RequestFailed(
                "timeout", f"unit {unit}: no answer within {timeout_s * 1000:.0f} ms"
            ) from None
        except LinkGarbage as exc:
            raise RequestFailed("bad_frame", f"unit {unit}: {exc}") from None
        except LinkDown as exc:
            raise BusDown(str(exc)) from None
        answer = parse_reply(request, reply)
        if isinstance(answer, ExceptionReply):
            name = EXCEPTION_NAMES.get(answer.code, f"exception code {answer.code}")
            raise RequestFailed("exception", f"unit {unit}: {name} (code {answer.code})", answer.code)
        if isinstance(answer, BadReply):
            raise RequestFailed("bad_frame", f"unit {unit}: {answer.why}")
        return answer

    async def _attempt(self, unit: int, function: int, timeout_s: float, kwargs: dict[str, Any]) -> Answer:
        """One exchange through pymodbus (RTU on a serial port, or RTU frames over TCP)."""
        client = self._client
        if client is None or not client.connected:
            raise BusDown("not connected")
        wait = self._quiet_at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        call: Any = {
            1: client.read_coils,
            2: client.read_discrete_inputs,
            3: client.read_holding_registers,
            4: client.read_input_registers,
            5: client.write_coil,
            6: client.write_register,
            16: client.write_registers,
            COIL_WORD: functools.partial(_send_coil_word, client),
        }[function]
        if function == COIL_WORD:
            kwargs = {"address": kwargs["address"], "word": kwargs["value"]}
        elif function == 16:
            kwargs = {"address": kwargs["address"], "values": kwargs["value"]}
        self.stats.attempts += 1
        self._rx_bytes = 0
        try:
            async with asyncio.timeout(timeout_s):
                response = await call(device_id=unit, **kwargs)
        except TimeoutError:
            # Bytes that arrived without making a frame were garbage or failed the CRC.
            self._quiet_at = max(
                self._quiet_at, time.monotonic() + self.endpoint.frame_gap_s + self.turnaround_s
            )
            if self._rx_bytes:
                raise RequestFailed(
                    "bad_frame",
                    f"unit {unit}: {self._rx_bytes} bytes but no valid frame (CRC error or garbage)",
                ) from None
            raise RequestFailed(
                "timeout", f"unit {unit}: no answer within {timeout_s * 1000:.0f} ms"
            ) from None
        except ModbusIOException as exc:
            if not client.connected:
                raise BusDown(str(exc)) from None
            raise RequestFailed("bad_frame", f"unit {unit}: {exc}") from None
        except (ConnectionException, OSError) as exc:
            raise BusDown(str(exc) or type(exc).__name__) from None
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, f"exception code {code}")
            raise RequestFailed("exception", f"unit {unit}: {name} (code {code})", code)
        registers = getattr(response, "registers", ()) or ()
        return Answer(
            data=struct.pack(f">{len(registers)}H", *registers),
            bits=tuple(bool(b) for b in getattr(response, "bits", ()) or ()),
            address=int(getattr(response, "address", 0) or 0),
            word=int(getattr(response, "word", 0) or 0),
        )


def _send_coil_word(client: Any, *, device_id: int, address: int, word: int) -> Any:
    client.register(CoilWord)  # so the echo decodes with its word (idempotent, per client)
    return client.execute(False, CoilWord(address, word, dev_id=device_id))
