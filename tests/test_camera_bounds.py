"""Bounded camera resolution and owner-only files, against real servers and a real `lintel run`."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from drivers.camera.config import CameraConfig
from tests.conftest import gateway_toml
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.mjpeg_server import MjpegServer, jpeg
from tests.support.process import lintel, lintel_output, stop_and_show_log, wait_status
from tests.test_camera_tls import offline_reason, run_until

# A daemon with one camera source (cv2, numpy, FFmpeg mapped) peaks near 110 MB here; one decoded
# 12000×12000 frame alone is 432 MB as BGR (measured before the bound: 1.1 GB peak RSS).
RSS_BOUND_MB = 300


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_huge_mjpeg_camera_is_refused_before_a_frame_is_decoded(tmp_path: Path, broker: Mosquitto) -> None:
    server = MjpegServer(jpeg(12000, 12000), interval_s=0.5).start()
    sources = f"""
[[sources]]
id = "cam-big"
type = "camera"
url = "{server.url()}"
stall_s = 2
offline_after_s = 2
reconnect_initial_s = 0.3
reconnect_max_s = 1
"""
    mqtt = f'url = "mqtt://127.0.0.1:{broker.port}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 0.5\n'
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(tmp_path / "state", mqtt=mqtt, sources=sources))
    collector = Collector(broker.port, topic="lintel/site-a/gw-test/#").start()
    proc = lintel("run", "-c", str(config))
    try:
        assert collector.wait_for(
            lambda c: any(m.payload.get("kind") == "camera_offline" for m in c.data()), 30
        )
        # Several reopen attempts have happened by now (backoff ≤ 1 s); each must stay cheap.
        assert server.connections >= 2
        peak = peak_rss_mb(proc.pid)
    finally:
        stop_and_show_log(proc)
        collector.stop()
        server.stop()
    offline = next(m for m in collector.data() if m.payload.get("kind") == "camera_offline")
    reason = offline.payload["attrs"]["reason"]
    assert reason.startswith("stream is 12000×12000, over the 1920×1080 limit"), reason
    assert "max_width/max_height of source cam-big" in reason
    assert not any(m.payload.get("kind") == "camera_online" for m in collector.data())
    assert peak < RSS_BOUND_MB, f"peak RSS {peak:.0f} MB"


def test_max_size_is_configurable(tmp_path: Path) -> None:
    server = MjpegServer(jpeg(1280, 720)).start()
    base = {"type": "camera", "id": "cam-c", "url": server.url(), "offline_after_s": 1}
    try:
        refused = run_until(
            CameraConfig.model_validate({**base, "max_width": 1024}), lambda k: "camera_offline" in k, 20
        )
        accepted = run_until(
            CameraConfig.model_validate({**base, "max_width": 1280, "max_height": 720}),
            lambda k: "camera_online" in k,
            20,
        )
    finally:
        server.stop()
    assert "1280×720, over the 1024×1080 limit" in offline_reason(refused)
    assert "camera_online" in [e.kind for e in accepted]


@pytest.mark.parametrize("key", ["max_width", "max_height"])
def test_max_size_must_be_positive(key: str) -> None:
    with pytest.raises(ValueError, match=key):
        CameraConfig.model_validate({"type": "camera", "id": "c", "url": "/dev/video0", key: 0})


def test_daemon_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(state, runtime={"status_interval_s": 0.2}))
    # The permissive umask of a manual run (systemd's UMask= does not apply).
    proc = lintel("run", "-c", str(config), preexec_fn=lambda: os.umask(0o022))
    try:
        wait_status(config, lambda s: True, 30)
        socket_path = state / "run" / "control.sock"
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            assert time.monotonic() < deadline, sorted(p.name for p in (state / "run").iterdir())
            time.sleep(0.05)
    finally:
        stop_and_show_log(proc)
    created = [state, *state.rglob("*")]
    assert len(created) >= 4, created  # state_dir, run/, outbox.db, status.json at least
    names = {p.name for p in created}
    assert {"outbox.db", "status.json"} <= names, names
    for path in created:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path == socket_path:
            assert mode == 0o660, oct(mode)  # chmod'ed on purpose: the operators' group may ack alarms
        else:
            assert mode & 0o077 == 0, f"{path.relative_to(tmp_path)} is {oct(mode)}"


def test_probe_names_the_size_and_the_keys(tmp_path: Path) -> None:
    server = MjpegServer(jpeg(2560, 1440)).start()
    sources = f"""
[[sources]]
id = "cam-p"
type = "camera"
url = "{server.url()}"
"""
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(tmp_path / "state", sources=sources))
    try:
        out = lintel_output("camera", "probe", "cam-p", "--seconds", "0.5", "-c", str(config))
    finally:
        server.stop()
    assert out.returncode == 1
    assert "stream is 2560×1440, over the 1920×1080 limit" in out.stderr, out.stderr
    assert "USB camera" not in out.stderr
