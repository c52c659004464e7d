"""systemd's sd_notify protocol, implemented directly over the NOTIFY_SOCKET datagram socket.

No libsystemd binding: one AF_UNIX datagram per message, `KEY=value` lines. A leading `@` in the
socket path means the Linux abstract namespace. Without NOTIFY_SOCKET (not under systemd, or
Type=simple) every call is a cheap no-op, so callers never need to check.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("lintel.systemd")


class Notifier:
    def __init__(self, address: str | None = None, watchdog_usec: int | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._sock: socket.socket | None = None
        self._warned = False
        if self.address:
            # Non-blocking: a notification is never worth stalling the event loop for.
            self._sock = socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
            )
        if watchdog_usec is None and _watchdog_for_us():
            watchdog_usec = _int_env("WATCHDOG_USEC")
        self.watchdog_usec = watchdog_usec

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> bool:
        """Send one notification, e.g. send(READY=1, STATUS="running"). True if delivered."""
        if self._sock is None or not self.address:
            return False
        text = "\n".join(f"{key}={value}" for key, value in fields.items())
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._sock.sendto(text.encode(), target)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %s: %s", self.address, exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=status, MAINPID=os.getpid())

    def status(self, status: str) -> bool:
        return self.send(STATUS=status)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def stopping(self, status: str = "stopping") -> bool:
        return self.send(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _int_env(name: str) -> int | None:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return None


def _watchdog_for_us() -> bool:
    pid = _int_env("WATCHDOG_PID")
    return pid is None or pid == os.getpid()
