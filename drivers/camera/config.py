"""Config of the `camera` source type: one video stream.

    [[sources]]
    type = "camera"
    id = "cam-lane-north"
    url = "rtsp://192.168.1.64:554/Streaming/Channels/102"
    password_file = "/etc/lintel/keys/cam-lane-north.pass"   # optional, fills in rtsp://user:PASSWORD@…
    stall_s = 5

`url` is an `rtsp://`, `http(s)://` (MJPEG or MPEG-TS) or `file://` address, a V4L2 device
(`/dev/video0`) or a plain file path (clips for tests and the demo). Use the camera's sub-stream
(low resolution, e.g. 640×360): the detector sees 416×416 anyway and decoding a 4K main stream
costs a Pi a core.

`https://` and `rtsps://` cameras are verified: the certificate must chain to `ca_file` (default:
the system's CA bundle) and name the url's host (or `tls_server_name`); `tls_verify = false` is an
explicit, warned opt-out. Streams larger than `max_width` × `max_height` are refused at open, before
a frame is decoded (a 12000×12000 MJPEG frame costs over 1 GB once decoded).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from gateway.core.config_base import SourceConfigBase, custom_error, one_password_source
from gateway.core.errors import ConfigProblem
from gateway.core.redact import mask_url

URL_EXPECTED = "rtsp://…, http(s)://…, file:///path, /dev/videoN or a path to a video file"
_SCHEMES = re.compile(r"^(rtsp|rtsps|http|https|file)://")
# FFmpeg's option string is `key;value|key;value`: a path holding either separator would inject options.
_OPTION_SEPARATORS = re.compile(r"[;|]")


def redact(url: str) -> str:
    """The url as logs and errors may show it (the one masking rule of `gateway.core.redact`)."""
    return mask_url(url)


def stream_kind(url: str) -> str:
    """`rtsp`, `http`, `usb` or `file`."""
    if url.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if url.startswith(("http://", "https://")):
        return "http"
    if url.startswith("/dev/video"):
        return "usb"
    return "file"


class CameraConfig(SourceConfigBase):
    type: Literal["camera"]
    _password: str | None = PrivateAttr(None)  # a deployed secret, set by with_secrets (never dumped)
    url: str = Field(description=f"The stream: {URL_EXPECTED}.")
    username: str | None = Field(None, description="RTSP/HTTP user, written into the url at open time.")
    password_file: str | None = Field(None, description="File holding the stream password (absolute path).")
    password_secret: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="Name of a deployed secret holding the stream password (instead of password_file).",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="tcp survives lossy Wi-Fi links.")
    open_timeout_s: float = Field(10.0, gt=0, le=120, description="Give up opening the stream after this.")
    read_timeout_s: float = Field(5.0, gt=0, le=120, description="OpenCV's own read timeout.")
    stall_s: float = Field(5.0, gt=0, le=300, description="No new frame for this long: abandon and reopen.")
    offline_after_s: float = Field(
        15.0, gt=0, le=3600, description="camera_offline after this long without frames."
    )
    reconnect_initial_s: float = Field(1.0, gt=0, le=60, description="First delay before reopening.")
    reconnect_max_s: float = Field(60.0, gt=0, le=3600, description="Longest delay between reopen attempts.")
    realtime: bool = Field(
        True, description="Files: play at the clip's frame rate (false: as fast as decoded)."
    )
    loop: bool = Field(False, description="Files: start again at the end (demo clips).")
    stats_interval_s: float = Field(60.0, gt=0, description="How often fps and decode_ms readings are sent.")
    tls_verify: bool = Field(
        True,
        description="https/rtsps: verify the camera's certificate (false: accept any — unsafe, warned).",
    )
    ca_file: str | None = Field(
        None,
        description="https/rtsps: PEM file of the CA (or the camera's own certificate) to trust; "
        "default the system CA bundle.",
    )
    tls_server_name: str | None = Field(
        None,
        description="https/rtsps: the name the certificate must carry, when it is not the url's host.",
    )
    max_width: int = Field(1920, gt=0, le=16384, description="Refuse streams wider than this (pixels).")
    max_height: int = Field(1080, gt=0, le=16384, description="Refuse streams taller than this (pixels).")
    decode_threads: int = Field(
        1,
        ge=0,
        le=16,
        description="FFmpeg decoding threads (0: one per core). Each holds its own frames: 5 H.264 "
        "640×360 cameras took 8 MB more at 2 threads than at 1.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "://" in value and not _SCHEMES.match(value):
            raise custom_error("unsupported stream address", URL_EXPECTED, got=value)
        if "://" not in value and not value.startswith("/"):
            raise custom_error("a file or device must be an absolute path", URL_EXPECTED, got=value)
        if (
            "@" in value.split("://", 1)[-1].split("/", 1)[0]
            and ":" in value.split("://", 1)[-1].split("@")[0]
        ):
            raise custom_error(
                "the password is written in the url",
                "the url without it, and `username` + `password_file` (the url appears in logs)",
                got=redact(value),
            )
        return value

    @model_validator(mode="after")
    def _timeouts(self) -> CameraConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise custom_error(
                "reconnect_max_s is below reconnect_initial_s",
                f"a value ≥ {self.reconnect_initial_s}",
                key="reconnect_max_s",
                got=str(self.reconnect_max_s),
            )
        one_password_source(self.password_file, self.password_secret)
        if self.password_file is not None and not Path(self.password_file).is_absolute():
            raise custom_error(
                "not an absolute path",
                "e.g. /etc/lintel/keys/cam.pass",
                key="password_file",
                got=self.password_file,
            )
        if self.ca_file is not None and (
            not Path(self.ca_file).is_absolute() or _OPTION_SEPARATORS.search(self.ca_file)
        ):
            raise custom_error(
                "not an absolute path without ';' or '|'",
                "e.g. /etc/lintel/certs/cam-ca.pem",
                key="ca_file",
                got=self.ca_file,
            )
        return self

    def secret_names(self) -> list[tuple[str, str]]:
        return [("password_secret", self.password_secret)] if self.password_secret else []

    def with_secrets(self, secrets: Mapping[str, str]) -> CameraConfig:
        resolved = self.model_copy()
        resolved._password = secrets.get(self.password_secret) if self.password_secret else None
        return resolved

    def password(self) -> str:
        """The stream password: a deployed secret (see `with_secrets`) or `password_file`, read now."""
        if self._password is not None:
            return self._password
        return Path(self.password_file).read_text().strip() if self.password_file else ""

    @property
    def tls(self) -> bool:
        """The stream runs over TLS (its certificate is verified unless `tls_verify = false`)."""
        return self.url.startswith(("https://", "rtsps://"))

    @property
    def kind(self) -> str:
        return stream_kind(self.url)

    def file_problems(self, prefix: str) -> list[ConfigProblem]:
        problems: list[ConfigProblem] = []
        if self.password_file is not None:
            path = Path(self.password_file)
            if not path.is_file():
                problems.append(
                    ConfigProblem(
                        f"{prefix}.password_file", "file not found", self.password_file, "a readable file"
                    )
                )
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            problems.append(
                ConfigProblem(f"{prefix}.ca_file", "file not found", self.ca_file, "a readable PEM file")
            )
        if self.kind == "file":
            path = Path(self.url.removeprefix("file://"))
            if not path.is_file():
                problems.append(
                    ConfigProblem(f"{prefix}.url", "video file not found", self.url, "an existing file")
                )
        return problems

    def config_warnings(self, prefix: str) -> list[ConfigProblem]:
        if self.tls and not self.tls_verify:
            return [
                ConfigProblem(
                    f"{prefix}.tls_verify",
                    "the camera's certificate is not verified: anyone on the path can pose as the "
                    "camera and receive its credentials",
                    "false",
                    "tls_verify = true, with ca_file = the camera's CA or certificate (PEM)",
                )
            ]
        return []
