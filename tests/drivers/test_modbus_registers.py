"""Register decoding against hand-derived bytes (IEEE 754 and two's complement worked by hand)."""

from __future__ import annotations

import pytest

from drivers.modbus.registers import PointSpec, decode, registers_to_bytes

# 230.5 V = 0x43668000: sign 0, exponent 0x86 (2^7), mantissa 1.80078125; bytes A=43 B=66 C=80 D=00.
ORDERS = [
    ("big", "big", [0x4366, 0x8000]),  # ABCD
    ("little", "big", [0x8000, 0x4366]),  # CDAB
    ("big", "little", [0x6643, 0x0080]),  # BADC
    ("little", "little", [0x0080, 0x6643]),  # DCBA
]


@pytest.mark.parametrize(("word", "byte", "regs"), ORDERS, ids=["ABCD", "CDAB", "BADC", "DCBA"])
def test_float32_in_every_word_and_byte_order(word: str, byte: str, regs: list[int]) -> None:
    spec = PointSpec("voltage_v", 4, 0, "float32", word_order=word, byte_order=byte)  # type: ignore[arg-type]
    assert registers_to_bytes(regs, word, byte) == bytes.fromhex("43668000")  # type: ignore[arg-type]
    assert decode(spec, regs) == 230.5


def test_signed_and_unsigned_integers() -> None:
    assert decode(PointSpec("a", 3, 0, "int16"), [0xFFFF]) == -1
    assert decode(PointSpec("a", 3, 0, "uint16"), [0xFFFF]) == 65535
    assert decode(PointSpec("a", 3, 0, "int32"), [0xFFFE, 0x1DC0]) == -123456
    assert decode(PointSpec("a", 3, 0, "uint32"), [0x0001, 0x86A0]) == 100000
    assert decode(PointSpec("a", 3, 0, "uint64"), [0x0000, 0x0001, 0x0000, 0x0000]) == 2**32
    assert decode(PointSpec("a", 3, 0, "int64"), [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE]) == -2
    assert decode(PointSpec("a", 3, 0, "float64"), [0x3FF8, 0, 0, 0]) == 1.5


def test_scale_and_offset_make_engineering_units() -> None:
    # A uint32 counter in 0.01 kWh steps: 100000 -> 1000.0 kWh.
    spec = PointSpec("energy_import_kwh", 3, 0x4000, "uint32", scale=0.01)
    assert decode(spec, [0x0001, 0x86A0]) == pytest.approx(1000.0)
    # A temperature in 0.1 degC with an offset of -40: raw 650 -> 25.0 degC.
    assert decode(PointSpec("temperature_c", 4, 0, "uint16", scale=0.1, offset=-40), [650]) == pytest.approx(
        25.0
    )


def test_not_a_number_is_none_not_a_reading() -> None:
    assert decode(PointSpec("power_w", 4, 0, "float32"), [0x7FC0, 0x0000]) is None  # quiet NaN
    assert decode(PointSpec("power_w", 4, 0, "float32"), [0x7F80, 0x0000]) is None  # +inf


def test_strings_bits_and_coils() -> None:
    model = PointSpec("model", 3, 0xFC02, "string", length=4)
    assert decode(model, [0x5344, 0x4D36, 0x3330, 0x0000]) == "SDM630"  # 'S''D' 'M''6' '3''0' NUL
    assert decode(PointSpec("alarm_flag", 3, 0, "bit", bit=3), [0x0008]) is True
    assert decode(PointSpec("alarm_flag", 3, 0, "bit", bit=2), [0x0008]) is False
    assert decode(PointSpec("relay_on", 1, 0, "bool"), [True]) is True


def test_bad_specs_and_values_are_refused() -> None:
    with pytest.raises(ValueError, match="type bool goes with functions 1 and 2"):
        PointSpec("x", 3, 0, "bool")
    with pytest.raises(ValueError, match="needs bit = 0-15"):
        PointSpec("x", 3, 0, "bit", bit=16)
    with pytest.raises(ValueError, match="outside 0-65535"):
        PointSpec("x", 3, 70000, "uint16")
    with pytest.raises(ValueError, match="needs 2 values, got 1"):
        decode(PointSpec("x", 3, 0, "float32"), [1])
    with pytest.raises(ValueError, match="not 16-bit"):
        registers_to_bytes([0x10000])
