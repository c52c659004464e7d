"""Canonical JSON of a command envelope: the exact bytes an operator key signs.

The form is RFC 8785 (JSON Canonicalization Scheme) for the values a command can hold: object keys
sorted by their UTF-16 code units, no whitespace, strings escaped as ECMAScript's JSON.stringify
does (only `"`, `\\` and control characters; everything else as UTF-8), numbers written as
ECMAScript writes them (`5.0` -> `5`, `1e-7` -> `1e-7`, `1e21` -> `1e+21`). Any JCS library (Go,
JavaScript, Java, Python) therefore produces the same bytes for the same envelope.

The signed document is the envelope with its `sig` member removed; everything else (target
gateway and site, key id, time, nonce, command, args) is covered. The gateway canonicalises what it
parsed, so what is verified is exactly what is executed, however the sender spaced its JSON.
Values JCS cannot carry faithfully are refused (`ValueError`): integers beyond ±2^53, non-finite
numbers, lone surrogates in strings.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

SIG_FIELD = "sig"
MAX_SAFE_INTEGER = 2**53 - 1


def canonical_bytes(envelope: dict[str, Any]) -> bytes:
    """The bytes covered by the signature: `envelope` without `sig`, in canonical JSON, UTF-8."""
    parts: list[str] = []
    _write({k: v for k, v in envelope.items() if k != SIG_FIELD}, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone surrogate (not valid Unicode)") from None


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"integer {value} is beyond ±2^53 (not exact in JSON numbers)")
        out.append(str(value))
    elif isinstance(value, float):
        out.append(es_number(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_order)):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise ValueError(f"not a JSON value: {type(value).__name__}")


def _utf16_order(key: str) -> bytes:
    # JCS sorts by UTF-16 code units; Python's str order is by code points (they differ above U+FFFF).
    return key.encode("utf-16-be", "surrogatepass")


def es_number(x: float) -> str:
    """A double written as ECMAScript's Number.prototype.toString writes it (RFC 8785 §3.2.2.3)."""
    if not math.isfinite(x):
        raise ValueError(f"{x} is not a JSON number")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr gives the shortest digits that round-trip, the same digits ECMAScript chooses.
    digits_tuple, exponent = Decimal(repr(abs(x))).as_tuple()[1:]
    digits = "".join(map(str, digits_tuple)).rstrip("0")
    assert isinstance(exponent, int)
    exponent += len("".join(map(str, digits_tuple))) - len(digits)
    k = len(digits)
    n = exponent + k  # the value is 0.<digits> x 10^n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
