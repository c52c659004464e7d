"""Where a Modbus bus is: a serial port, a Modbus TCP gateway, or a serial server speaking RTU over TCP.

    rtu:///dev/serial/by-id/usb-FTDI_...-if00-port0?baudrate=9600&parity=N&stopbits=1
    tcp://192.168.1.50:502
    rtu+tcp://192.168.1.60:4001?baudrate=9600      (a serial server passing raw RTU frames)

Serial ports should be named by `/dev/serial/by-id/...`: a USB adapter that is unplugged and comes
back may get a new `/dev/ttyUSB*` number, but its by-id link follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

Kind = Literal["rtu", "tcp", "rtu+tcp"]
EXAMPLES = (
    "rtu:///dev/serial/by-id/...?baudrate=9600&parity=N&stopbits=1, tcp://host:502 or rtu+tcp://host:4001"
)
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


class EndpointError(ValueError):
    """The endpoint text is wrong; the message says what and how to fix it."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    kind: Kind
    path: str = ""  # serial device (rtu)
    host: str = ""  # tcp, rtu+tcp
    port: int = 502
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    bytesize: int = 8

    @property
    def serial_line(self) -> bool:
        """True when frames travel over an RS-485 line we must pace (rtu, rtu+tcp)."""
        return self.kind != "tcp"

    @property
    def char_time_s(self) -> float:
        """Seconds one character takes on the wire (start bit, data bits, parity, stop bits)."""
        bits = 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits
        return bits / self.baudrate

    @property
    def frame_gap_s(self) -> float:
        """The silent interval that ends an RTU frame: 3.5 characters, fixed at 1.75 ms above 19200
        baud (Modbus over serial line spec, 2.5.1.1). Zero on Modbus TCP."""
        if not self.serial_line:
            return 0.0
        if self.baudrate > 19200:
            return 0.00175
        return 3.5 * self.char_time_s

    def wire_time_s(self, request_bytes: int, response_bytes: int) -> float:
        """Time a request and its response occupy the line, gaps included (zero on TCP)."""
        if not self.serial_line:
            return 0.0
        return (request_bytes + response_bytes) * self.char_time_s + 2 * self.frame_gap_s

    def __str__(self) -> str:
        if self.kind == "rtu":
            return f"rtu://{self.path}?baudrate={self.baudrate}&parity={self.parity}&stopbits={self.stopbits}"
        suffix = f"?baudrate={self.baudrate}" if self.kind == "rtu+tcp" else ""
        return f"{self.kind}://{self.host}:{self.port}{suffix}"


def parse_endpoint(text: str) -> Endpoint:
    """Parse an endpoint URL; raise EndpointError naming the part that is wrong."""
    parts = urlsplit(text)
    kind = parts.scheme
    if kind not in ("rtu", "tcp", "rtu+tcp"):
        raise EndpointError(f"unknown scheme {kind!r}" if kind else "no scheme")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    known = {"baudrate", "parity", "stopbits", "bytesize"} if kind != "tcp" else set()
    unknown = sorted(set(options) - known)
    if unknown:
        raise EndpointError(
            f"unknown option {unknown[0]!r}" + (f" (known: {', '.join(sorted(known))})" if known else "")
        )
    serial = _serial_options(options)
    if kind == "rtu":
        if parts.netloc or not parts.path.startswith("/"):
            raise EndpointError("a serial endpoint is rtu:///dev/... (three slashes, absolute device path)")
        return Endpoint("rtu", path=parts.path, **serial)
    if not parts.hostname:
        raise EndpointError("no host")
    try:
        port = parts.port or 502
    except ValueError:
        raise EndpointError("port must be 1-65535") from None
    if parts.path not in ("", "/"):
        raise EndpointError("a TCP endpoint has no path")
    return Endpoint(kind, host=parts.hostname, port=port, **serial)  # type: ignore[arg-type]


def _serial_options(options: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "baudrate" in options:
        try:
            out["baudrate"] = int(options["baudrate"])
        except ValueError:
            raise EndpointError(f"baudrate {options['baudrate']!r} is not a number") from None
        if out["baudrate"] not in BAUDRATES:
            raise EndpointError(f"baudrate {out['baudrate']} is not one of {', '.join(map(str, BAUDRATES))}")
    if "parity" in options:
        parity = options["parity"].upper()
        if parity not in ("N", "E", "O"):
            raise EndpointError(f"parity {options['parity']!r} is not N, E or O")
        out["parity"] = parity
    for key, allowed in (("stopbits", (1, 2)), ("bytesize", (7, 8))):
        if key in options:
            if options[key] not in {str(a) for a in allowed}:
                raise EndpointError(f"{key} {options[key]!r} is not {' or '.join(map(str, allowed))}")
            out[key] = int(options[key])
    return out
