"""Merging point reads into as few Modbus requests as the protocol allows.

Points of one unit and one function code, sorted by address, share a request while the span stays
within the protocol limit (125 registers, 2000 bits) and the hole between two points is at most
`max_gap` addresses (reading a few unused registers is cheaper than another round trip on a 9600-baud
bus). Like Telegraf's request optimiser, minus the heuristics: the result is the minimum number of
requests for the chosen gap, found greedily over sorted addresses.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from drivers.modbus.registers import BIT_FUNCTIONS, STRUCT_FORMATS, PointSpec, decode

MAX_REGISTERS = 125  # function 3/4 request limit (Modbus spec, 6.3/6.4)
MAX_BITS = 2000  # function 1/2 request limit (Modbus spec, 6.1/6.2)


Decoded = list[tuple[str, "float | int | bool | str | None"]]


@dataclass(frozen=True, slots=True)
class ReadRequest:
    function: int
    address: int
    count: int
    points: tuple[PointSpec, ...]
    # How the response becomes the points' values, compiled once per request (see `_compile`).
    decode: Callable[[bytes | Sequence[bool]], Decoded] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decode", _compile(self))

    def values_of(
        self, point: PointSpec, response: Sequence[int] | Sequence[bool]
    ) -> Sequence[int] | Sequence[bool]:
        """The slice of this request's response that belongs to `point`."""
        start = point.address - self.address
        return response[start : start + point.size]


def _compile(request: ReadRequest) -> Callable[[bytes | Sequence[bool]], Decoded]:
    """A function from the request's response (register bytes, or bits) to (name, value) per point.

    Numbers in the Modbus order (ABCD: word and byte order big) that do not overlap are unpacked by one
    precompiled `struct` over the whole block, then scaled exactly as `registers.decode` does; any other
    point (strings, bits, swapped orders, overlaps) goes through `registers.decode`. Both give the same
    values (tests/drivers/test_modbus_plan.py checks them against each other).
    """
    if request.function in BIT_FUNCTIONS:

        def bits(response: bytes | Sequence[bool]) -> Decoded:
            assert not isinstance(response, bytes)
            return [(p.name, decode(p, request.values_of(p, response))) for p in request.points]

        return bits
    fast: list[PointSpec] = []
    slow: list[PointSpec] = []
    layout = ">"
    at = request.address  # next register the layout has not covered
    for p in request.points:
        if p.type in STRUCT_FORMATS and p.word_order == "big" and p.byte_order == "big" and p.address >= at:
            if p.address > at:
                layout += f"{2 * (p.address - at)}x"
            layout += STRUCT_FORMATS[p.type][1:]
            at = p.address + p.size
            fast.append(p)
        else:
            slow.append(p)
    unpack = struct.Struct(layout).unpack_from
    steps = [(p.name, p.type == "float32", p.scale, p.offset) for p in fast]
    if slow:  # keep the points' order in the result, whichever way each was decoded
        order = {p.name: i for i, p in enumerate(request.points)}

    def block(response: bytes | Sequence[bool]) -> Decoded:
        assert isinstance(response, bytes)
        out: Decoded = []
        for (name, is_f32, scale, offset), raw in zip(steps, unpack(response), strict=True):
            if isinstance(raw, float):
                if not math.isfinite(raw):
                    out.append((name, None))
                    continue
                if is_f32:
                    raw = float(f"{raw:.7g}")  # float32 carries ~7 significant digits
            if scale == 1.0 and offset == 0.0:
                out.append((name, raw))
            else:
                out.append((name, float(f"{raw * scale + offset:.12g}")))
        if slow:
            for p in slow:
                words = struct.unpack_from(f">{p.size}H", response, 2 * (p.address - request.address))
                out.append((p.name, decode(p, words)))
            out.sort(key=lambda item: order[item[0]])
        return out

    return block


def plan_reads(points: Iterable[PointSpec], max_gap: int = 10) -> list[ReadRequest]:
    """Requests covering every point; points never straddle two requests."""
    if max_gap < 0:
        raise ValueError("max_gap must be >= 0")
    by_function: dict[int, list[PointSpec]] = {}
    for p in points:
        by_function.setdefault(p.function, []).append(p)
    requests: list[ReadRequest] = []
    for function in sorted(by_function):
        limit = MAX_BITS if function in BIT_FUNCTIONS else MAX_REGISTERS
        group = sorted(by_function[function], key=lambda p: (p.address, p.size))
        current: list[PointSpec] = []
        start = end = 0  # end is exclusive
        for p in group:
            if p.size > limit:
                raise ValueError(f"{p.name}: {p.size} registers do not fit one request (max {limit})")
            p_end = p.address + p.size
            if current and p.address - end <= max_gap and max(end, p_end) - start <= limit:
                current.append(p)
                end = max(end, p_end)
                continue
            if current:
                requests.append(ReadRequest(function, start, end - start, tuple(current)))
            current, start, end = [p], p.address, p_end
        if current:
            requests.append(ReadRequest(function, start, end - start, tuple(current)))
    return requests
