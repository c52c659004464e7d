"""Opening a stream safely: verified TLS, FFmpeg options under a lock, and a bounded resolution.

TLS (`https://`, `rtsps://`). OpenCV's FFmpeg backend takes FFmpeg options only through the
process-wide `OPENCV_FFMPEG_CAPTURE_OPTIONS` variable (`key;value|key;value`), read when a capture
opens. We pass FFmpeg's TLS protocol options `tls_verify;1` and `ca_file;<PEM>` (FFmpeg loads no
default CA store, so the system bundle is named explicitly). Verified against this build (FFmpeg 62
/ OpenSSL 1.1.1 bundled in opencv-python): the options reach the TLS layer of both http and rtsp.
FFmpeg's OpenSSL backend does *not* check that the certificate names the host (its documentation
says so, and `verifyhost` only sets SNI), so every open is preceded by a handshake of our own
(Python's ssl: chain and host name, no request, no credentials); it also yields a clear reason
("TLS certificate not trusted …") where FFmpeg only fails to open. The host check has a window:
an attacker who can pass our handshake to the real camera and intercept FFmpeg's connection is
still stopped by FFmpeg's chain check, so a camera-specific `ca_file` is the strong setting.

The variable is process-global and capture threads open concurrently, so every FFmpeg open sets it
under one gate and restores it after: opens of different cameras are serialised. An open that hangs
past its budget (OpenCV's timeouts are not always honoured: the reason for the stall watchdog) must
not block every other camera forever, so the gate is held for at most `open_timeout_s` + 2 s; after
that the next open overtakes it. That is safe because OpenCV reads the variable when an open starts,
and an overtaken open no longer restores the variable.

Resolution. FFmpeg reports the stream's size at open, before any frame is decoded; a stream over
`max_width` × `max_height` is refused there (measured: 52 MB RSS instead of 1.1 GB for a
12000×12000 MJPEG camera). FFmpeg's `max_pixels` decoder option does not reach the decoder through
this variable (measured: no effect). A stream that grows after the open is not refused: OpenCV
scales every later frame to the open-time size, so the BGR frames stay small, but FFmpeg decodes
the big frame first (measured: +154 MB RSS for a 12000×12000 grey frame; about 1.5 bytes/pixel
for 4:2:0 colour). A reopen (reconnect, restart) then refuses it.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from drivers.camera.config import CameraConfig, redact

log = logging.getLogger("lintel.camera")

OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
GATE_SLACK_S = 2.0
DEFAULT_PORTS = {"https": 443, "rtsps": 322}

T = TypeVar("T")


class CameraRefused(OSError):
    """The stream was refused before any credential or frame was exchanged; str() is the reason."""


def system_ca_file() -> str | None:
    """The system's CA bundle as one PEM file (FFmpeg takes a file, not a folder), if there is one."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def capture_options(config: CameraConfig) -> str | None:
    """The FFmpeg option string for this camera, or None for OpenCV's defaults (file, usb, http)."""
    options: dict[str, str] = {}
    if config.kind == "rtsp":
        # Setting the variable replaces OpenCV's own default (rtsp_transport=tcp): say it ourselves.
        options["rtsp_transport"] = config.rtsp_transport
    if config.tls:
        if config.tls_verify:
            ca_file = config.ca_file or system_ca_file()
            if ca_file is None:
                raise CameraRefused(
                    "no system CA bundle to verify the camera's TLS certificate: set ca_file to the "
                    "camera's CA or certificate (PEM)"
                )
            options["tls_verify"] = "1"
            options["ca_file"] = ca_file
        else:
            options["tls_verify"] = "0"
    if not options:
        return None
    return "|".join(f"{key};{value}" for key, value in options.items())


def tls_preflight(config: CameraConfig, timeout_s: float) -> None:
    """Handshake with the camera and verify chain and host name; raise CameraRefused if not trusted.

    Sends nothing but the TLS handshake: no request, no credentials.
    """
    parts = urlsplit(config.url)
    host = parts.hostname or ""
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise CameraRefused(f"bad port in {redact(config.url)}: {exc}") from None
    name = config.tls_server_name or host
    context = ssl.create_default_context(cafile=config.ca_file)
    deadline = time.monotonic() + timeout_s
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(max(0.1, deadline - time.monotonic()))  # one budget for the whole check
            with context.wrap_socket(sock, server_hostname=name):
                pass
    except ssl.SSLCertVerificationError as exc:
        what = exc.verify_message or str(exc)
        if "hostname" in what.lower() or "ip address mismatch" in what.lower():
            raise CameraRefused(
                f"TLS certificate does not name {name} ({what}): if this is the camera, set "
                "tls_server_name to the name its certificate carries"
            ) from None
        trusted = f"ca_file {config.ca_file}" if config.ca_file else "the system CA bundle"
        raise CameraRefused(
            f"TLS certificate not trusted ({what}; checked against {trusted}): set ca_file to the "
            "camera's CA or its own certificate (PEM), or tls_verify = false to accept any "
            "certificate (unsafe: the camera's credentials go to whoever answers)"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise CameraRefused(f"TLS connection to {redact(config.url)} failed: {exc}") from None


def _set_env(value: str | None) -> None:
    if value is None:
        os.environ.pop(OPTIONS_ENV, None)
    else:
        os.environ[OPTIONS_ENV] = value


class _EnvGate:
    """The variable's lock, whose holder loses it after its budget (a hung open keeps its thread).

    Setting and restoring happen under the gate's own lock, so an overtaken open that returns late
    cannot overwrite what the new holder set; the new holder restores the value from before both.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._holder: object | None = None
        self._expires = 0.0
        self._previous: str | None = None

    def enter(self, budget_s: float, options: str | None) -> object:
        with self._cond:
            while self._holder is not None and (left := self._expires - time.monotonic()) > 0:
                self._cond.wait(left)
            if self._holder is not None:
                log.warning("a camera open hung past its budget; the next camera opens anyway")
            else:
                self._previous = os.environ.get(OPTIONS_ENV)
            _set_env(options if options is not None else self._previous)
            token = object()
            self._holder, self._expires = token, time.monotonic() + budget_s
            return token

    def leave(self, token: object) -> None:
        with self._cond:
            if self._holder is not token:
                return  # overtaken: the variable belongs to the new holder now
            _set_env(self._previous)
            self._holder = None
            self._cond.notify_all()


_GATE = _EnvGate()


def with_capture_options(
    options: str | None,
    opener: Callable[[], T],
    budget_s: float = 30.0,
    on_enter: Callable[[], None] | None = None,
) -> T:
    """Run `opener` (an OpenCV FFmpeg open) with the option variable set to `options`.

    None leaves the variable as it is (unset, or the operator's own). It is restored afterwards, so
    no other open sees this camera's options. `budget_s` is how long this open may hold the gate
    (its open timeout plus slack) before another open may overtake it. `on_enter` runs once the
    gate is held (the stall watchdog starts its clock there, not while waiting for another camera).
    """
    token = _GATE.enter(budget_s, options)
    if on_enter is not None:
        on_enter()
    try:
        return opener()
    finally:
        _GATE.leave(token)


def size_problem(config: CameraConfig, width: int, height: int) -> str | None:
    """The refusal reason when a stream is over the configured bound, else None."""
    if width <= config.max_width and height <= config.max_height:
        return None
    return (
        f"stream is {width}×{height}, over the {config.max_width}×{config.max_height} limit: use the "
        f"camera's sub-stream, or raise max_width/max_height of source {config.id}"
    )
