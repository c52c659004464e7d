"""A real AF_UNIX datagram socket standing in for systemd's notification socket."""

from __future__ import annotations

import socket
import time
from pathlib import Path


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[dict[str, str]] = []

    def collect(self, seconds: float) -> list[dict[str, str]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        return self.messages

    def wait_for(self, key: str, seconds: float) -> dict[str, str] | None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for m in self.messages:
                if key in m:
                    return m
            self.collect(0.1)
        return None

    def close(self) -> None:
        self.sock.close()
