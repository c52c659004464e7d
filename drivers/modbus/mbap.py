"""Modbus TCP framing (the MBAP header) and the few PDUs the gateway sends: pure, on bytes, never raising
on what a device sends back (a reply is `parse_reply`d into an `Answer` or a `BadReply`).

MBAP (Modbus Messaging on TCP/IP Implementation Guide v1.0b, 3.1.3): transaction id (2 bytes), protocol
id (2, always 0), length (2: the unit id plus the PDU), unit id (1), then the PDU. A client may keep
several transactions outstanding on one connection; the transaction id pairs each reply with its request.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
MAX_PDU = 253  # Modbus application protocol spec 4.1
COIL_WORD = 0x105  # function 05 with a raw 16-bit word (drivers/modbus/coilword.py), not a real code


@dataclass(frozen=True, slots=True)
class Answer:
    """A reply that is not an exception: register data (big-endian bytes, two per register), bits, or a
    write's echo."""

    data: bytes = b""
    bits: tuple[bool, ...] = ()
    address: int = 0
    word: int = 0

    @property
    def registers(self) -> tuple[int, ...]:
        return struct.unpack(f">{len(self.data) // 2}H", self.data)


@dataclass(frozen=True, slots=True)
class ExceptionReply:
    code: int


@dataclass(frozen=True, slots=True)
class BadReply:
    """A frame that does not answer the request it claims to (wrong function, size or content)."""

    why: str


def request_pdu(function: int, address: int, *, count: int = 0, value: object = None) -> bytes:
    """The PDU of a read (functions 1-4, `count`) or a write (5, 6, 16, COIL_WORD; `value`)."""
    if function in (1, 2, 3, 4):
        return struct.pack(">BHH", function, address, count)
    if function == 5:
        return struct.pack(">BHH", 5, address, 0xFF00 if value else 0x0000)
    if function == COIL_WORD:
        return struct.pack(">BHH", 5, address, int(value))  # type: ignore[call-overload]
    if function == 6:
        return struct.pack(">BHH", 6, address, int(value))  # type: ignore[call-overload]
    if function == 16:
        words = list(value)  # type: ignore[call-overload]
        return struct.pack(f">BHHB{len(words)}H", 16, address, len(words), 2 * len(words), *words)
    raise ValueError(f"function {function} is not one the gateway sends")


def frame(tid: int, unit: int, pdu: bytes) -> bytes:
    return HEADER.pack(tid, 0, len(pdu) + 1, unit) + pdu


def parse_reply(request: bytes, reply: bytes) -> Answer | ExceptionReply | BadReply:
    """Check `reply` (a PDU) against the `request` PDU it answers and decode it."""
    if not reply:
        return BadReply("empty PDU")
    function = request[0]
    if reply[0] == function | 0x80:
        return ExceptionReply(reply[1]) if len(reply) == 2 else BadReply("malformed exception reply")
    if reply[0] != function:
        return BadReply(f"function {reply[0]} answers a request for function {function}")
    if function in (1, 2, 3, 4):
        count = struct.unpack_from(">H", request, 3)[0]
        size = (count + 7) // 8 if function in (1, 2) else 2 * count
        if len(reply) < 2 or reply[1] != size or len(reply) != 2 + size:
            return BadReply(
                f"{len(reply) - 2} data bytes for {count} {'bits' if size != 2 * count else 'registers'}"
            )
        if function in (3, 4):
            return Answer(data=reply[2:])
        data = reply[2:]
        return Answer(bits=tuple(bool(data[i >> 3] >> (i & 7) & 1) for i in range(count)))
    if function in (5, 6):
        if len(reply) != 5:
            return BadReply(f"a {len(reply)}-byte echo")
        address, word = struct.unpack_from(">HH", reply, 1)
        return Answer(address=address, word=word, bits=(word != 0,))
    if function == 16:
        if len(reply) != 5:
            return BadReply(f"a {len(reply)}-byte echo")
        address, count = struct.unpack_from(">HH", reply, 1)
        return Answer(address=address, word=count)
    return BadReply(f"function {function}")
