"""A TCP proxy that can cut every connection abruptly (RST) and refuse new ones for a while:
a broker outage as the gateway sees it, while the broker itself (and the test's subscriber) stay up."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time

from tests.support.broker import free_port


class CuttableProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._refuse_until = 0.0
        self._stop = False
        self.frozen = False  # when set, bytes stop flowing both ways: a hung broker
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                if self.frozen:
                    time.sleep(0.05)
                    continue
                readable, _, _ = select.select([a, b], [], [], 0.1)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    peers[s].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def freeze(self) -> None:
        """Keep connections open but pass nothing: PUBACKs stop arriving."""
        self.frozen = True

    def cut(self, refuse_s: float = 0.0) -> None:
        """Reset every open connection; refuse new ones for `refuse_s` seconds."""
        self._refuse_until = time.monotonic() + refuse_s
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            _reset(a)
            _reset(b)

    def close(self) -> None:
        self._stop = True
        self.cut()
        self._listener.close()


def _reset(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
