"""A hard cap on what the broker may send us, enforced before a byte of an oversize packet is kept.

paho reads a whole packet into memory before handing it over (a 100 MB publish on the command
topic took the daemon from 88 to 405 MB), and MQTT 3.1.1 has no way to tell the broker our limit.
So the socket paho reads from is wrapped: `FrameGuard` follows the MQTT framing in the bytes paho
receives (a fixed-header byte, then the 1-4 byte "remaining length", then that many bytes) and, as
soon as a packet announces a size over the cap, `recv` raises instead of returning. paho treats it as
a lost connection; the uplink logs why, counts it and reconnects. With a clean session the broker
forgets the oversize message, so the next connection is not hit again by the same one.

With MQTT 5 the same cap is also sent as the CONNECT's Maximum Packet Size, so a conforming broker
(mosquitto) drops such a message for us without sending it at all; the guard stays as the backstop.

paho offers no public hook for its socket: `CappedClient` overrides `_create_socket`, the one place
paho builds it (and wraps it itself for websockets). tests/test_uplink.py exercises it on the paho
version we pin, against a real mosquitto.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt


class PacketTooLarge(OSError):
    def __init__(self, size: int, cap: int) -> None:
        super().__init__(errno.EMSGSIZE, f"broker sent a {size:,}-byte packet; the cap is {cap:,} bytes")
        self.size = size
        self.cap = cap


class FrameGuard:
    """Follows MQTT packet boundaries in a received byte stream; raises PacketTooLarge when a packet's
    total size (fixed header + remaining length) exceeds `cap`."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._state = "command"  # command -> length -> body -> command ...
        self._length = 0
        self._multiplier = 1
        self._length_bytes = 0
        self._body_left = 0

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._state == "body":
                step = min(self._body_left, n - i)
                self._body_left -= step
                i += step
                if self._body_left == 0:
                    self._state = "command"
                continue
            byte = data[i]
            i += 1
            if self._state == "command":
                self._state, self._length, self._multiplier, self._length_bytes = "length", 0, 1, 0
                continue
            # "length": a variable byte integer, 7 bits per byte, at most 4 bytes (paho checks that).
            self._length += (byte & 0x7F) * self._multiplier
            self._multiplier *= 128
            self._length_bytes += 1
            if byte & 0x80 and self._length_bytes < 4:
                continue
            total = 1 + self._length_bytes + self._length
            if total > self.cap:
                raise PacketTooLarge(total, self.cap)
            self._body_left = self._length
            self._state = "body" if self._length else "command"


class CappedSocket:
    """A socket whose `recv` feeds a FrameGuard; everything else is the wrapped socket's."""

    def __init__(self, sock: Any, cap: int, on_refused: Callable[[PacketTooLarge], None]) -> None:
        self._sock = sock
        self._on_refused = on_refused
        self.guard = FrameGuard(cap)

    def recv(self, bufsize: int) -> bytes:
        data: bytes = self._sock.recv(bufsize)
        try:
            self.guard.feed(data)
        except PacketTooLarge as exc:
            self._on_refused(exc)
            raise
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class CappedClient(mqtt.Client):
    """paho's client with a receive cap of `max_packet_bytes` on every incoming packet.
    `too_large` holds the last refusal (None until one happens)."""

    def __init__(self, *args: Any, max_packet_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_packet_bytes = max_packet_bytes
        self.too_large: PacketTooLarge | None = None

    def _create_socket(self) -> Any:
        return CappedSocket(super()._create_socket(), self.max_packet_bytes, self._refused)

    def _refused(self, exc: PacketTooLarge) -> None:
        self.too_large = exc
