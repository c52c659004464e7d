"""TLS cameras for real: an HTTPS MJPEG camera and an rtsps:// camera (GStreamer RTSP behind a TLS
front), trusted, untrusted, for another name, and the explicit `tls_verify = false` opt-out.

The untrusted servers ask for credentials (401) and record every byte they receive: the proof that
an impostor gets nothing is that they received no request at all, hence no password."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from drivers.camera.config import CameraConfig
from drivers.camera.opening import OPTIONS_ENV, capture_options, with_capture_options
from drivers.camera.source import CameraSource
from gateway.core import Event, Record, SourceContext, SystemClock
from tests.conftest import gateway_toml
from tests.support.mjpeg_server import MjpegServer, jpeg
from tests.support.process import lintel, lintel_output, wait_status
from tests.support.tls import Pki, issue_cert_for, make_pki
from tests.support.tls_front import TlsFront

PASSWORD = "s3cret-Cam-Pw"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def frame() -> bytes:
    return jpeg(320, 240)


def camera(url: str, tmp_path: Path, **extra: object) -> CameraConfig:
    secret = tmp_path / "cam.pass"
    secret.write_text(PASSWORD + "\n")
    return CameraConfig.model_validate(
        {
            "type": "camera",
            "id": "cam-t",
            "url": url,
            "username": "admin",
            "password_file": str(secret),
            "stall_s": 2,
            "offline_after_s": 1,
            "open_timeout_s": 5,
            "read_timeout_s": 3,
            "reconnect_initial_s": 0.3,
            "reconnect_max_s": 1,
            **extra,
        }
    )


def run_until(cfg: CameraConfig, done: Callable[[list[str]], bool], timeout_s: float) -> list[Event]:
    """Run the camera source until `done(kinds)` holds; return its events."""
    source = CameraSource(cfg)
    records: list[Record] = []

    async def scenario() -> None:
        ctx = SourceContext(cfg.id, SystemClock(), lambda r: records.append(r) or True)
        task = asyncio.create_task(source.run(ctx))
        started = time.monotonic()
        try:
            while not done([r.kind for r in records if isinstance(r, Event)]):
                assert time.monotonic() - started < timeout_s, records
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    return [r for r in records if isinstance(r, Event)]


def offline_reason(events: list[Event]) -> str:
    return str(next(e for e in events if e.kind == "camera_offline").attrs["reason"])


def test_trusted_https_camera_streams_and_gets_its_credentials(
    pki: Pki, frame: bytes, tmp_path: Path
) -> None:
    server = MjpegServer(
        frame, cert=(pki.server_cert, pki.server_key), username="admin", password=PASSWORD
    ).start()
    try:
        events = run_until(
            camera(server.url(), tmp_path, ca_file=str(pki.ca)), lambda k: "camera_online" in k, 20
        )
    finally:
        server.stop()
    online = next(e for e in events if e.kind == "camera_online")
    assert (online.attrs["width"], online.attrs["height"]) == (320, 240)
    # The positive control: a trusted camera does receive the credentials (so the untrusted cases
    # below, which assert they were not sent, can fail).
    assert b"Authorization: Basic" in server.received


@pytest.mark.parametrize("trust", ["other-ca", "system"])
def test_untrusted_https_camera_gets_nothing(pki: Pki, frame: bytes, tmp_path: Path, trust: str) -> None:
    server = MjpegServer(
        frame, cert=(pki.server_cert, pki.server_key), username="admin", password=PASSWORD
    ).start()
    extra = {"ca_file": str(pki.other_ca)} if trust == "other-ca" else {}
    try:
        events = run_until(camera(server.url(), tmp_path, **extra), lambda k: "camera_offline" in k, 20)
    finally:
        server.stop()
    reason = offline_reason(events)
    assert reason.startswith("TLS certificate not trusted"), reason
    assert "set ca_file" in reason and "tls_verify = false" in reason
    assert ("other-ca.pem" in reason) == (trust == "other-ca")
    assert "camera_online" not in [e.kind for e in events]
    assert server.connections >= 1 and server.handshake_failures == server.connections
    assert bytes(server.received) == b""  # no request, so no Authorization header, no password
    assert PASSWORD.encode() not in server.received


def test_certificate_for_another_name_is_refused(pki: Pki, frame: bytes, tmp_path: Path) -> None:
    # Signed by the trusted CA but for another host: FFmpeg's OpenSSL backend alone would accept it.
    cert = issue_cert_for(pki, "other-host", "DNS:other.example")
    server = MjpegServer(frame, cert=cert, username="admin", password=PASSWORD).start()
    try:
        events = run_until(
            camera(server.url(), tmp_path, ca_file=str(pki.ca)), lambda k: "camera_offline" in k, 20
        )
        assert "does not name 127.0.0.1" in offline_reason(events)
        assert "tls_server_name" in offline_reason(events)
        assert bytes(server.received) == b""
        # The installer says which name the camera's certificate carries: then it streams.
        events = run_until(
            camera(server.url(), tmp_path, ca_file=str(pki.ca), tls_server_name="other.example"),
            lambda k: "camera_online" in k,
            20,
        )
    finally:
        server.stop()
    assert "camera_online" in [e.kind for e in events]


def test_tls_verify_false_is_an_explicit_warned_opt_out(pki: Pki, frame: bytes, tmp_path: Path) -> None:
    server = MjpegServer(frame, cert=(pki.server_cert, pki.server_key)).start()
    try:
        events = run_until(
            camera(server.url(), tmp_path, tls_verify=False), lambda k: "camera_online" in k, 20
        )
    finally:
        server.stop()
    assert "camera_online" in [e.kind for e in events]
    sources = f"""
[[sources]]
id = "cam-t"
type = "camera"
url = "{server.url()}"
tls_verify = false
"""
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(tmp_path / "state", sources=sources))
    out = lintel_output("check-config", "-c", str(config))
    assert out.returncode == 0, out.stderr
    assert "sources[0].tls_verify: the camera's certificate is not verified" in out.stderr, out.stderr
    proc = lintel("run", "-c", str(config))
    try:
        wait_status(config, lambda status: True, 30)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    warned = [line for line in err.decode().splitlines() if "sources[0].tls_verify" in line]
    assert len(warned) == 1 and "WARNING" in warned[0], err.decode()[-2000:]


class RtspsCamera:
    """The GStreamer RTSP server (plain) behind a TLS front with the given certificate."""

    def __init__(self, cert: Path, key: Path) -> None:
        from tests.support.rtsp import RtspServer

        self.rtsp = RtspServer("mjpeg")
        self.front = TlsFront(cert, key, self.rtsp.port)
        self.url = f"rtsps://127.0.0.1:{self.front.port}/cam"

    def stop(self) -> None:
        self.front.stop()
        self.rtsp.stop()


def test_rtsps_camera_trusted_streams_untrusted_gets_nothing(pki: Pki, tmp_path: Path) -> None:
    cam = RtspsCamera(pki.server_cert, pki.server_key)
    try:
        events = run_until(
            camera(cam.url, tmp_path, ca_file=str(pki.other_ca)), lambda k: "camera_offline" in k, 20
        )
        assert offline_reason(events).startswith("TLS certificate not trusted")
        assert bytes(cam.front.received) == b"" and cam.front.handshakes == 0
        events = run_until(camera(cam.url, tmp_path, ca_file=str(pki.ca)), lambda k: "camera_online" in k, 30)
        assert b"DESCRIBE rtsps://" in cam.front.received  # the control: requests do get through
    finally:
        cam.stop()
    assert "camera_online" in [e.kind for e in events]


def test_ffmpeg_itself_refuses_an_untrusted_certificate(pki: Pki, frame: bytes, tmp_path: Path) -> None:
    """Without our own handshake first, the options alone make FFmpeg refuse (the chain check that
    still holds when an attacker lets our handshake through to the real camera)."""
    import cv2

    server = MjpegServer(frame, cert=(pki.server_cert, pki.server_key)).start()
    try:
        results = {}
        for ca in (pki.other_ca, pki.ca):
            cfg = camera(server.url(), tmp_path, ca_file=str(ca))
            cap = with_capture_options(
                capture_options(cfg), lambda: cv2.VideoCapture(server.url(), cv2.CAP_FFMPEG)
            )
            results[ca.name] = cap.isOpened()
            cap.release()
    finally:
        server.stop()
    assert results == {"other-ca.pem": False, "ca.pem": True}


def test_options_are_per_open_and_restored(tmp_path: Path) -> None:
    cfg = camera("rtsps://127.0.0.1:1/x", tmp_path, ca_file="/etc/lintel/cam-ca.pem")
    assert capture_options(cfg) == "rtsp_transport;tcp|tls_verify;1|ca_file;/etc/lintel/cam-ca.pem"
    assert capture_options(camera("http://127.0.0.1:1/x", tmp_path)) is None
    os.environ.pop(OPTIONS_ENV, None)
    seen: list[str | None] = []
    inside = threading.Event()
    release = threading.Event()

    def slow_open() -> None:
        seen.append(os.environ.get(OPTIONS_ENV))
        inside.set()
        release.wait(5)

    first = threading.Thread(target=with_capture_options, args=("a;1", slow_open))
    first.start()
    assert inside.wait(5)
    # A second open waits for the first: it cannot change the variable under it.
    second = threading.Thread(
        target=with_capture_options, args=("b;2", lambda: seen.append(os.environ.get(OPTIONS_ENV)))
    )
    second.start()
    second.join(0.3)
    assert second.is_alive() and seen == ["a;1"]
    release.set()
    first.join(5)
    second.join(5)
    assert seen == ["a;1", "b;2"]
    assert OPTIONS_ENV not in os.environ


def test_an_open_hung_past_its_budget_does_not_block_other_cameras() -> None:
    os.environ.pop(OPTIONS_ENV, None)
    seen: dict[str, str | None] = {}
    inside, release = threading.Event(), threading.Event()

    def hung_open() -> None:
        seen["hung"] = os.environ.get(OPTIONS_ENV)
        inside.set()
        release.wait(10)  # an OpenCV open that ignores its timeout

    hung = threading.Thread(target=with_capture_options, args=("a;1", hung_open, 0.3))
    hung.start()
    assert inside.wait(5)
    started = time.monotonic()
    with_capture_options("b;2", lambda: seen.__setitem__("next", os.environ.get(OPTIONS_ENV)), 5)
    waited = time.monotonic() - started
    assert seen == {"hung": "a;1", "next": "b;2"}
    assert 0.2 <= waited < 3, waited  # waited for the hung open's budget, not for the open itself
    assert OPTIONS_ENV not in os.environ  # restored by the overtaking open to the value before both
    third_in, third_release = threading.Event(), threading.Event()
    third = threading.Thread(
        target=with_capture_options, args=("c;3", lambda: (third_in.set(), third_release.wait(10)), 5)
    )
    third.start()
    assert third_in.wait(5)
    release.set()  # the hung open returns late, while the third holds the gate
    hung.join(5)
    assert os.environ.get(OPTIONS_ENV) == "c;3"  # the late one did not restore over the holder's
    third_release.set()
    third.join(5)
    assert OPTIONS_ENV not in os.environ
