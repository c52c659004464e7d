"""Merged reads: as few requests as the limits and the allowed gap permit."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.plan import plan_reads
from drivers.modbus.registers import PointSpec, decode

# An Eastron SDM630-like input register layout (addresses from its register map; float32 each).
SDM = [
    PointSpec("voltage_l1_v", 4, 0x0000, "float32"),
    PointSpec("voltage_l2_v", 4, 0x0002, "float32"),
    PointSpec("voltage_l3_v", 4, 0x0004, "float32"),
    PointSpec("frequency_hz", 4, 0x0046, "float32"),
    PointSpec("energy_import_kwh", 4, 0x0048, "float32"),
    PointSpec("energy_export_kwh", 4, 0x004A, "float32"),
    PointSpec("energy_total_kwh", 4, 0x0156, "float32"),
]


def spans(requests):  # type: ignore[no-untyped-def]
    return [(r.function, r.address, r.count) for r in requests]


def test_contiguous_points_share_a_request_and_distant_ones_do_not() -> None:
    assert spans(plan_reads(SDM, max_gap=10)) == [(4, 0x0000, 6), (4, 0x0046, 6), (4, 0x0156, 2)]


def test_a_larger_gap_fills_holes_up_to_the_protocol_limit() -> None:
    # 0x0000..0x004B is 76 registers: one request; 0x0156 is 266 registers further: its own.
    assert spans(plan_reads(SDM, max_gap=100)) == [(4, 0x0000, 76), (4, 0x0156, 2)]


def test_no_request_exceeds_125_registers_and_no_point_is_split() -> None:
    points = [PointSpec(f"p{a}", 3, a, "float32") for a in range(0, 300, 2)]
    requests = plan_reads(points, max_gap=0)
    assert all(r.count <= 125 for r in requests)
    assert len(requests) == 3  # 62 float32 per request (124 registers), 150 points
    covered = sorted(p.name for r in requests for p in r.points)
    assert covered == sorted(p.name for p in points)
    for r in requests:
        for p in r.points:
            assert r.address <= p.address and p.address + p.size <= r.address + r.count


def test_function_codes_are_never_mixed_and_bits_allow_2000() -> None:
    points = [
        PointSpec("relay_on", 1, 0, "bool"),
        PointSpec("door_in", 2, 5, "bool"),
        PointSpec("relay_2_on", 1, 1500, "bool"),
        PointSpec("power_w", 4, 0, "float32"),
    ]
    assert spans(plan_reads(points, max_gap=2000)) == [(1, 0, 1501), (2, 5, 1), (4, 0, 2)]


def test_values_of_slices_each_point_out_of_the_response() -> None:
    (request,) = plan_reads(SDM[:3], max_gap=0)
    response = [0x4366, 0x8000, 0x4367, 0x0000, 0x4368, 0x0000]
    assert [list(request.values_of(p, response)) for p in request.points] == [
        [0x4366, 0x8000],
        [0x4367, 0x0000],
        [0x4368, 0x0000],
    ]


def test_an_oversized_point_is_refused() -> None:
    with pytest.raises(ValueError, match="do not fit one request"):
        plan_reads([PointSpec("serial", 3, 0, "string", length=126)])


# -- one-pass decoding: the compiled decoder of a request gives what decoding each point alone gives --

_TYPES = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bit", "string"]


@st.composite
def _register_points(draw):  # type: ignore[no-untyped-def]
    points = []
    for i in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(_TYPES))
        points.append(
            PointSpec(
                f"p{i}",
                draw(st.sampled_from([3, 4])),
                draw(st.integers(0, 40)),  # small range: points overlap and touch often
                kind,
                word_order=draw(st.sampled_from(["big", "little"])),
                byte_order=draw(st.sampled_from(["big", "little"])),
                scale=draw(st.sampled_from([1.0, 0.1, 1000.0])),
                offset=draw(st.sampled_from([0.0, -40.0])),
                bit=draw(st.integers(0, 15)) if kind == "bit" else None,
                length=draw(st.integers(1, 4)) if kind == "string" else 1,
            )
        )
    return points


@settings(max_examples=300, deadline=None)
@given(_register_points(), st.binary(min_size=256, max_size=256), st.integers(0, 100))
def test_compiled_block_decoding_equals_decoding_each_point(points, noise, max_gap) -> None:  # type: ignore[no-untyped-def]
    # NaN and infinity patterns are in the noise too: 0x7FC0 0000 is a float32 NaN, 0x7FF0... float64 inf
    for request in plan_reads(points, max_gap=max_gap):
        data = noise[: 2 * request.count]
        words = list(struct.unpack(f">{request.count}H", data))
        expected = [(p.name, decode(p, request.values_of(p, words))) for p in request.points]
        got = request.decode(data)
        assert [name for name, _ in got] == [name for name, _ in expected]
        for (_, a), (_, b) in zip(got, expected, strict=True):
            assert a == b or (
                isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
            )


def test_compiled_decoding_reads_a_nan_float32_as_not_available() -> None:
    request = plan_reads([PointSpec("v", 3, 0, "float32"), PointSpec("i", 3, 2, "int16", scale=0.1)])[0]
    assert request.decode(bytes.fromhex("7fc00000fff6")) == [("v", None), ("i", -1.0)]
