"""Decoding Modbus register values: a pure function from 16-bit registers to a point's value.

Orders, as meter datasheets name them for a 32-bit value with bytes A (most significant) .. D:
- `word_order="big"`, `byte_order="big"`: ABCD, the Modbus convention (Eastron, CHINT);
- `word_order="little"`, `byte_order="big"`: CDAB ("word swapped", many PLCs);
- `word_order="big"`, `byte_order="little"`: BADC ("byte swapped");
- `word_order="little"`, `byte_order="little"`: DCBA.
Numeric values are `raw * scale + offset`. A float that is NaN or infinite decodes to None: meters
use it for "not available", and it must never reach upstream as a number.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

DataType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bit", "string", "bool"
]
Order = Literal["big", "little"]
Function = Literal[1, 2, 3, 4]  # coils, discrete inputs, holding registers, input registers

STRUCT_FORMATS = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "int64": ">q",
    "uint64": ">Q",
    "float32": ">f",
    "float64": ">d",
}
_WORDS = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "int64": 4,
    "uint64": 4,
    "float32": 2,
    "float64": 4,
}

BIT_FUNCTIONS = (1, 2)


@dataclass(frozen=True, slots=True)
class PointSpec:
    """Where a point lives and how to decode it.

    `bit` picks one bit (0 = least significant) of a 16-bit register for type `bit`; `length` is
    the number of registers of a `string` (two ASCII characters each, NULs and spaces trimmed).
    Coils and discrete inputs (functions 1 and 2) are type `bool`.
    """

    name: str
    function: Function
    address: int
    type: DataType
    word_order: Order = "big"
    byte_order: Order = "big"
    scale: float = 1.0
    offset: float = 0.0
    bit: int | None = None
    length: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"{self.name}: address {self.address} is outside 0-65535")
        if (self.function in BIT_FUNCTIONS) != (self.type == "bool"):
            raise ValueError(
                f"{self.name}: type bool goes with functions 1 and 2 (coils, discrete inputs) only"
            )
        if self.type == "bit" and (self.bit is None or not 0 <= self.bit <= 15):
            raise ValueError(f"{self.name}: type bit needs bit = 0-15")
        if self.type == "string" and self.length < 1:
            raise ValueError(f"{self.name}: a string needs length >= 1 register")

    @property
    def size(self) -> int:
        """Registers (or bits, for functions 1 and 2) this point occupies."""
        if self.type in ("bool", "bit"):
            return 1
        if self.type == "string":
            return self.length
        return _WORDS[self.type]


def registers_to_bytes(
    registers: Sequence[int], word_order: Order = "big", byte_order: Order = "big"
) -> bytes:
    """Arrange registers into big-endian bytes (most significant first) per the point's orders."""
    words = list(registers) if word_order == "big" else list(reversed(registers))
    out = bytearray()
    for word in words:
        if not 0 <= word <= 0xFFFF:
            raise ValueError(f"register value {word} is not 16-bit")
        hi, lo = word >> 8, word & 0xFF
        out += bytes((hi, lo)) if byte_order == "big" else bytes((lo, hi))
    return bytes(out)


def decode(spec: PointSpec, values: Sequence[int] | Sequence[bool]) -> float | int | bool | str | None:
    """The point's value from exactly `spec.size` registers (or bits)."""
    if len(values) != spec.size:
        raise ValueError(f"{spec.name}: needs {spec.size} values, got {len(values)}")
    if spec.type == "bool":
        return bool(values[0])
    registers = [int(v) for v in values]
    if spec.type == "bit":
        assert spec.bit is not None
        return bool((registers[0] >> spec.bit) & 1)
    if spec.type == "string":
        raw = registers_to_bytes(registers, "big", spec.byte_order)
        return raw.split(b"\0", 1)[0].decode("ascii", errors="replace").strip()
    raw_value = struct.unpack(
        STRUCT_FORMATS[spec.type], registers_to_bytes(registers, spec.word_order, spec.byte_order)
    )[0]
    if isinstance(raw_value, float) and not math.isfinite(raw_value):
        return None
    if spec.type == "float32":
        # A float32 carries ~7 significant digits; printing the binary expansion (229.6172637939453)
        # would publish noise the meter never measured.
        raw_value = float(f"{raw_value:.7g}")
    if spec.scale == 1.0 and spec.offset == 0.0:
        return raw_value
    return float(f"{raw_value * spec.scale + spec.offset:.12g}")


def bytes_to_registers(raw: bytes, word_order: Order = "big", byte_order: Order = "big") -> list[int]:
    """Inverse of `registers_to_bytes`: big-endian bytes to registers in the point's orders."""
    if len(raw) % 2:
        raise ValueError("an odd number of bytes does not fill whole registers")
    words = []
    for i in range(0, len(raw), 2):
        hi, lo = raw[i], raw[i + 1]
        words.append((hi << 8 | lo) if byte_order == "big" else (lo << 8 | hi))
    return words if word_order == "big" else list(reversed(words))


def encode(spec: PointSpec, value: float | int | bool | str) -> list[int]:
    """Registers (or 0/1 bits) that `decode(spec, ...)` turns back into `value`.

    Used by the meter simulator and by writes; `scale`/`offset` are undone and integers rounded.
    A `bit` point encodes as a whole register with only that bit set (or clear).
    """
    if spec.type == "bool":
        return [1 if value else 0]
    if spec.type == "bit":
        assert spec.bit is not None
        return [(1 << spec.bit) if value else 0]
    if spec.type == "string":
        raw = str(value).encode("ascii")[: spec.length * 2].ljust(spec.length * 2, b"\0")
        return bytes_to_registers(raw, "big", spec.byte_order)
    number = (float(value) - spec.offset) / spec.scale if spec.scale != 1.0 or spec.offset else value
    if spec.type.startswith("float"):
        raw = struct.pack(STRUCT_FORMATS[spec.type], float(number))
    else:
        raw = struct.pack(STRUCT_FORMATS[spec.type], round(float(number)))
    return bytes_to_registers(raw, spec.word_order, spec.byte_order)
