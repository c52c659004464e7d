"""A real MJPEG camera for the tests: HTTP or HTTPS, multipart/x-mixed-replace, on 127.0.0.1 port 0.

It records every byte it receives (after TLS decryption), so a test can prove what a client sent —
or that it sent nothing. With `password` set it asks for HTTP Basic credentials first (401), as an
impostor would to collect them.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
import threading
import time
from pathlib import Path


class MjpegServer:
    def __init__(
        self,
        jpeg: bytes,
        *,
        cert: tuple[Path, Path] | None = None,
        username: str | None = None,
        password: str | None = None,
        interval_s: float = 0.1,
    ) -> None:
        self.jpeg = jpeg
        self.interval_s = interval_s
        self.expected_auth = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode() if password else None
        )
        self.context: ssl.SSLContext | None = None
        if cert is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(str(cert[0]), str(cert[1]))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = bytearray()  # every decrypted byte any client sent
        self.connections = 0
        self.handshake_failures = 0
        self.frames_sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="mjpeg-server", daemon=True)

    def url(self, path: str = "/video") -> str:
        scheme = "https" if self.context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> MjpegServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.listener.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self.connections += 1
        conn.settimeout(5)
        try:
            if self.context is not None:
                try:
                    conn = self.context.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    with self._lock:
                        self.handshake_failures += 1
                    return
            while not self._stop.is_set():
                request = self._read_request(conn)
                if request is None:
                    return
                auth = next(
                    (
                        line.split(":", 1)[1].strip()
                        for line in request.split("\r\n")
                        if line.lower().startswith("authorization:")
                    ),
                    None,
                )
                if self.expected_auth is not None and auth != self.expected_auth:
                    conn.sendall(
                        b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="cam"\r\n'
                        b"Content-Length: 0\r\n\r\n"
                    )
                    continue
                self._stream(conn)
                return
        except OSError:
            return
        finally:
            conn.close()

    def _read_request(self, conn: socket.socket) -> str | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return None
            with self._lock:
                self.received.extend(chunk)
            data += chunk
        return data.decode("latin-1")

    def _stream(self, conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n"
            b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
        )
        while not self._stop.is_set():
            conn.sendall(
                b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(self.jpeg)
                + self.jpeg
                + b"\r\n"
            )
            self.frames_sent += 1
            time.sleep(self.interval_s)  # the camera's frame rate, not a wait for a condition


def jpeg(width: int, height: int) -> bytes:
    """A real baseline JPEG of the given size (uniform grey with a few bars; small on the wire)."""
    import cv2
    import numpy as np

    image = np.full((height, width), 90, np.uint8)
    image[:, :: max(1, width // 8)] = 200
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    return data.tobytes()
