"""The camera lane for real: an H.264 clip through `lintel run` to the broker, and a GStreamer RTSP
server that is frozen (SIGSTOP), resumed, killed and restarted under the capture's stall watchdog."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from drivers.camera.config import CameraConfig
from drivers.camera.scene import LANE, Scene, ScenePlan, load_sprites
from drivers.camera.source import CameraSource
from gateway.core import Event, Record, SourceContext, SystemClock
from tests.conftest import gateway_toml
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.media import photo
from tests.support.process import lintel, lintel_output, stop_and_show_log, wait_status
from tests.support.rtsp import RtspServer
from tests.support.schema import validate

ROOT = Path(__file__).resolve().parents[1]
SHORT = ScenePlan(enter_s=1, park_s=3, leave_s=20, gone_s=22, walk_from_s=9, walk_to_s=13, total_s=30, fps=5)


def test_clip_through_the_daemon_raises_and_clears_once(tmp_path: Path, broker: Mosquitto) -> None:
    sprites = load_sprites(
        photo("darknet/dog.jpg"), photo("darknet/person.jpg"), photo("opencv-doc/building.jpg")
    )
    clip = Scene(sprites, SHORT).write(tmp_path / "lane.mp4", codec="h264")
    sources = f"""
[[sources]]
id = "cam-a"
type = "camera"
url = "{clip}"
stall_s = 2
offline_after_s = 3
stats_interval_s = 5

[inference]
threads = 1

[[fire_lanes]]
id = "lane-a"
camera = "cam-a"
polygon = {LANE}
grace_s = 6
settle_s = 2
exit_delay_s = 4
forced_interval_s = 3
motion_interval_s = 0.5
"""
    mqtt = f'url = "mqtt://127.0.0.1:{broker.port}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 0.5\n'
    config = tmp_path / "lintel.toml"
    config.write_text(
        gateway_toml(tmp_path / "state", mqtt=mqtt, sources=sources, runtime={"status_interval_s": 0.5})
    )
    collector = Collector(broker.port, topic="lintel/site-a/gw-test/#").start()
    proc = lintel("run", "-c", str(config))
    try:
        assert collector.wait_for(
            lambda c: any(m.payload.get("kind") == "camera_offline" for m in c.data()), 60
        )
        status = wait_status(config, lambda s: s["lanes"].get("fire_lanes") is not None, 5)
        shown = lintel_output("status", "-c", str(config))
        assert "lane-a on cam-a: UNKNOWN (camera offline)" in shown.stdout, shown.stdout
    finally:
        stop_and_show_log(proc)
        collector.stop()
    by_kind: dict[str, list] = {}
    for m in collector.data():
        by_kind.setdefault(str(m.payload.get("kind", m.payload.get("point"))), []).append(m)
    lane_events = [
        (m.payload["kind"], m.payload["ts_ms"], m.payload["attrs"])
        for m in collector.data()
        if m.topic.endswith(
            (
                "/lane-a/fire_lane_blocked",
                "/lane-a/fire_lane_cleared",
                "/lane-a/fire_lane_unknown",
                "/lane-a/fire_lane_visible",
            )
        )
    ]
    assert len(by_kind["fire_lane_blocked"]) == 1, lane_events
    assert len(by_kind["fire_lane_cleared"]) == 1, lane_events
    blocked, cleared = by_kind["fire_lane_blocked"][0], by_kind["fire_lane_cleared"][0]
    assert blocked.topic == "lintel/site-a/gw-test/alarm/lane-a/fire_lane_blocked"
    assert blocked.payload["attrs"]["dwell_s"] == pytest.approx(6, abs=2), lane_events
    assert cleared.payload["attrs"]["dwell_s"] == pytest.approx(SHORT.leave_s - SHORT.park_s, abs=3), (
        lane_events
    )
    assert cleared.payload["attrs"]["alarm_id"] == blocked.payload["attrs"]["alarm_id"]
    online = by_kind["camera_online"][0].payload["attrs"]
    assert (online["width"], online["height"]) == (640, 360)
    assert by_kind["camera_offline"][0].payload["attrs"]["reason"] == "end of file"
    # The clip ended: the lane cannot see, so it says UNKNOWN (not "clear").
    assert by_kind["fire_lane_unknown"][0].payload["attrs"]["reason"] == "camera offline"
    points = {
        r["point"]
        for m in collector.data()
        if m.topic.endswith("/telemetry/cam-a")
        for r in m.payload["readings"]
    }
    assert {"fps", "decode_ms"} <= points
    for kind in (
        "fire_lane_blocked",
        "fire_lane_cleared",
        "camera_online",
        "camera_offline",
        "fire_lane_unknown",
    ):
        for m in by_kind[kind]:
            validate(m.topic, m.payload)
    evidence = tmp_path / "state" / "evidence" / f"{blocked.payload['attrs']['evidence_id']}.jpg"
    assert evidence.read_bytes()[:2] == b"\xff\xd8"
    assert (
        status["lanes"]["fire_lanes"]["detector"] == "yolov4-tiny-coco-int8"
        and status["lanes"]["fire_lanes"]["detector_runs"] > 0
    )


@pytest.mark.parametrize("codec", ["h264", "mjpeg"])
def test_rtsp_freeze_kill_restart_recovers(codec: str) -> None:
    server = RtspServer(codec)
    cfg = CameraConfig.model_validate(
        {
            "type": "camera",
            "id": "cam-r",
            "url": f"rtsp://127.0.0.1:{server.port}/cam",
            "stall_s": 2,
            "offline_after_s": 3,
            "open_timeout_s": 3,
            "read_timeout_s": 3,
            "reconnect_initial_s": 0.3,
            "reconnect_max_s": 1,
        }
    )
    source = CameraSource(cfg)
    records: list[Record] = []

    def kinds() -> list[str]:
        return [r.kind for r in records if isinstance(r, Event)]

    async def until(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
        started = time.monotonic()
        while not predicate():
            assert time.monotonic() - started < timeout, kinds()
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    async def scenario() -> None:
        nonlocal server
        ctx = SourceContext("cam-r", SystemClock(), lambda r: records.append(r) or True)
        task = asyncio.create_task(source.run(ctx))
        try:
            await until(lambda: kinds().count("camera_online") == 1, 20)
            assert source.latest_frame() is not None and source.latest_frame().image.shape == (240, 320, 3)
            # Freeze the server: OpenCV's read would hang; our watchdog abandons it after stall_s.
            os.kill(server.proc.pid, signal.SIGSTOP)
            took = await until(lambda: source.capture is not None and source.capture.stalls >= 1, 10)
            assert took <= cfg.stall_s + 1.5
            assert not source.online
            await until(lambda: "camera_offline" in kinds(), 10)
            os.kill(server.proc.pid, signal.SIGCONT)
            await until(lambda: kinds().count("camera_online") == 2, 30)
            # Kill it: offline; start it again on the same port: online, without restarting the source.
            server.stop()
            await until(lambda: kinds().count("camera_offline") == 2, 15)
            server = RtspServer(codec, server.port)
            await until(lambda: kinds().count("camera_online") == 3, 30)
            assert source.online
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
    offline = [r for r in records if isinstance(r, Event) and r.kind == "camera_offline"]
    assert "stalled" in str(offline[0].attrs["reason"])
