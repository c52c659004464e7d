"""Sparkplug B payloads (`org.eclipse.tahu.protobuf.Payload`) with the `protobuf` library.

No generated code: the message types are built at import from a descriptor stated here, field for
field as in the specification's `sparkplug_b.proto` (Eclipse Sparkplug 3.0, the parts an edge node
of ours writes or reads: Payload and Metric with its scalar values). Anything else a peer sends
(metadata, property sets, data sets, templates) is kept as unknown fields and ignored. The wire
numbers are checked against an independent implementation's compiled `.proto`
(tests/test_bridges_sparkplug.py). Only this module imports protobuf, and only the Sparkplug
bridge and link import this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "org.eclipse.tahu.protobuf"

# Sparkplug B datatypes (the specification's DataType enum) that we use.
INT64 = 4
UINT64 = 8
DOUBLE = 10
BOOLEAN = 11
STRING = 12

_F = descriptor_pb2.FieldDescriptorProto
# (name, number, type); every field is proto2 `optional` except Payload.metrics.
_METRIC_FIELDS = (
    ("name", 1, _F.TYPE_STRING),
    ("alias", 2, _F.TYPE_UINT64),
    ("timestamp", 3, _F.TYPE_UINT64),
    ("datatype", 4, _F.TYPE_UINT32),
    ("is_historical", 5, _F.TYPE_BOOL),
    ("is_transient", 6, _F.TYPE_BOOL),
    ("is_null", 7, _F.TYPE_BOOL),
    ("int_value", 10, _F.TYPE_UINT32),
    ("long_value", 11, _F.TYPE_UINT64),
    ("float_value", 12, _F.TYPE_FLOAT),
    ("double_value", 13, _F.TYPE_DOUBLE),
    ("boolean_value", 14, _F.TYPE_BOOL),
    ("string_value", 15, _F.TYPE_STRING),
    ("bytes_value", 16, _F.TYPE_BYTES),
)
_VALUE_FIELDS = {"int_value", "long_value", "float_value", "double_value", "boolean_value"}
_VALUE_FIELDS |= {"string_value", "bytes_value"}
_PAYLOAD_FIELDS = (("timestamp", 1, _F.TYPE_UINT64), ("seq", 3, _F.TYPE_UINT64), ("uuid", 4, _F.TYPE_STRING))


def _build() -> tuple[Any, Any]:
    fd = descriptor_pb2.FileDescriptorProto(name="lintel_sparkplug_b.proto", package=PACKAGE, syntax="proto2")
    payload = fd.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    for name, number, ftype in _METRIC_FIELDS:
        f = metric.field.add(name=name, number=number, type=ftype, label=_F.LABEL_OPTIONAL)
        if name in _VALUE_FIELDS:
            f.oneof_index = 0
    for name, number, ftype in _PAYLOAD_FIELDS:
        payload.field.add(name=name, number=number, type=ftype, label=_F.LABEL_OPTIONAL)
    payload.field.add(
        name="metrics",
        number=2,
        type=_F.TYPE_MESSAGE,
        label=_F.LABEL_REPEATED,
        type_name=f".{PACKAGE}.Payload.Metric",
    )
    payload.field.add(name="body", number=5, type=_F.TYPE_BYTES, label=_F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()  # our own pool: never clashes with a peer's compiled one
    pool.Add(fd)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.Payload"))
    return cls, cls.Metric


Payload, Metric = _build()

_VALUE_FIELD = {INT64: "long_value", UINT64: "long_value", DOUBLE: "double_value"}
_VALUE_FIELD |= {BOOLEAN: "boolean_value", STRING: "string_value"}


@dataclass(frozen=True, slots=True)
class M:
    """One metric to write: `name` only in births, `datatype` only in births (the spec's rules)."""

    alias: int
    value: Any
    ts_ms: int
    datatype: int
    name: str | None = None
    historical: bool = False


def encode(ts_ms: int, metrics: Iterable[M], seq: int | None = None, births: bool = False) -> bytes:
    """A serialised Payload. `births`: every metric carries its name and datatype."""
    p = Payload(timestamp=ts_ms)
    if seq is not None:
        p.seq = seq
    for m in metrics:
        pm = p.metrics.add(alias=m.alias, timestamp=m.ts_ms)
        if births or m.name is not None:
            pm.name = m.name or ""
            pm.datatype = m.datatype
        if m.historical:
            pm.is_historical = True
        if m.value is None:
            pm.is_null = True
        else:
            field = _VALUE_FIELD[m.datatype]
            value = m.value
            if m.datatype == INT64:
                value = int(value) & 0xFFFF_FFFF_FFFF_FFFF  # the spec carries Int64 in two's complement
            setattr(pm, field, value)
    out: bytes = p.SerializeToString()
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def with_seq(payload: bytes, seq: int) -> bytes:
    """`payload` with field 3 (seq) appended: a later occurrence of a singular field wins when parsed,
    so a stored payload (written without seq) gets its seq at publish time without a re-encode."""
    return payload + b"\x18" + _varint(seq)


def as_historical(payload: bytes, seq: int) -> bytes:
    """A stored DDATA sent after the session it was meant for: every metric `is_historical`, so a
    host records it without overwriting the newer values the births carried."""
    p = Payload.FromString(payload)
    for m in p.metrics:
        m.is_historical = True
    p.seq = seq
    out: bytes = p.SerializeToString()
    return out
