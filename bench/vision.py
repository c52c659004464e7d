"""Vision: detector latency, the cost of idle cameras under motion gating, and alarm latency.

1. Detector latency per 640×360 frame (letterbox, inference, decoding, NMS) at 1 and 2 threads,
   on a real photograph. Target: ≤ 60 ms on one thread.
2. Four cameras playing clips in real time through the real driver (capture threads), the real
   fire-lane watch and one inference thread, for `--seconds`: CPU share of one core and RSS with the
   model loaded. Idle (an empty courtyard) and busy (cars arriving, parking, leaving) clips.
   Targets: 4 idle cameras ≤ 10 % of one core; RSS ≤ 200 MB.
3. Time from the car stopping to `fire_lane_blocked`, minus the grace period, in scene time over
   the composited scene (the detector runs on every frame it is asked to).

    python -m bench.vision [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from bench.common import cpu_seconds, print_table, rss_mb
from drivers.camera.config import CameraConfig
from drivers.camera.scene import LANE, Scene, ScenePlan, load_sprites
from drivers.camera.source import CameraSource
from gateway.core import Event, Record, SourceContext, SystemClock
from gateway.core.actuators import ActuatorHub
from gateway.core.frames import Frame, FrameHub
from gateway.inference.catalog import find
from gateway.inference.config import InferenceSection
from gateway.inference.engine import InferenceEngine, load_model
from gateway.lanes import LaneDeps
from gateway.lanes.alarms import AlarmBook
from gateway.lanes.fire_lanes.analyzer import CameraAnalyzer
from gateway.lanes.fire_lanes.component import FireLaneComponent
from gateway.lanes.fire_lanes.config import FireLaneConfig, VisionSection
from gateway.lanes.fire_lanes.detector import Detector, latency_ms
from gateway.lanes.fire_lanes.firelane import LaneWatch
from gateway.storage.state import StateStore

MEDIA = Path(__file__).resolve().parents[1] / ".cache" / "media"


def detector_latency(runs: int) -> list[tuple[str, str, str]]:
    image = cv2.resize(cv2.imread(str(MEDIA / "darknet" / "dog.jpg")), (640, 360))
    rows = []
    for name in ("yolov4-tiny-coco", "yolov4-tiny-coco-int8", "yolov2-tiny-coco"):
        for threads in (1, 2):
            p50, p95 = latency_ms(Detector(load_model(find(name), threads)).detect, image, runs)
            target = "≤ 60 ms" if threads == 1 else ""
            rows.append((f"{name}, {threads} thread(s)", f"{p50:.1f} ms p50, {p95:.1f} ms p95", target))
    return rows


def photo_levers() -> list[tuple[str, str, str]]:
    """Recall and loose boxes on the labelled photographs (tests/data/vehicles.toml) per lever."""
    from tests.support.vehicles import labelled_photos, score

    colour, grey = labelled_photos(), labelled_photos(grey=True)
    rows = []
    for name, size, floor in (
        ("yolov2-tiny-coco", None, 0.3),
        ("yolov4-tiny-coco", None, 0.3),
        ("yolov4-tiny-coco", None, 0.2),
        ("yolov4-tiny-coco", (416, 416), 0.3),
        ("yolov4-tiny-coco", (512, 512), 0.3),
        ("yolov4-tiny-coco", (608, 608), 0.3),
        ("yolov4-tiny-coco", (640, 384), 0.3),
        ("yolov4-tiny-coco-int8", None, 0.3),
    ):
        det = Detector(load_model(find(name), 2), floor, input_size=size)
        c, g = score(det.detect, colour), score(det.detect, grey)
        shape = f"{size[0]}x{size[1]}" if size else "frame aspect"
        found = f"{c.found}/{c.vehicles} found, {c.loose} loose"
        rows.append(
            (
                f"photos: {name} {shape}, score {floor}",
                f"{found}; grey {g.found}/{g.vehicles}, {g.loose} loose",
                "≥ 80 %, ≤ 1 per 10",
            )
        )
    return rows


def lane(camera: str, index: int) -> FireLaneConfig:
    return FireLaneConfig.model_validate(
        {"id": f"lane-{index}", "camera": camera, "polygon": LANE, "grace_s": 20}
    )


async def cameras_run(clip: Path, seconds: float, cameras: int) -> tuple[float, float, int, int]:
    hub = FrameHub()
    tmp = Path(tempfile.mkdtemp())
    store = StateStore(tmp / "state.db")
    records: list[Record] = []

    def keep(record: Record) -> bool:
        records.append(record)
        return True

    sources = []
    for i in range(cameras):
        cfg = CameraConfig.model_validate(
            {"type": "camera", "id": f"cam-{i}", "url": str(clip), "loop": True}
        )
        source = CameraSource(cfg)
        hub.attach(cfg.id, source)
        sources.append((cfg.id, source))
    vision, inference = VisionSection(), InferenceSection()
    engine = InferenceEngine(inference.threads)
    deps = LaneDeps(
        SystemClock(),
        keep,
        AlarmBook(store),
        store,
        hub,
        ActuatorHub(),
        tmp,
        lambda: engine,
        lambda _name: "",
    )
    watch = FireLaneComponent(vision, inference, [lane(cid, i) for i, (cid, _) in enumerate(sources)], deps)
    await watch.start()
    tasks = [asyncio.create_task(src.run(SourceContext(cid, SystemClock(), keep))) for cid, src in sources]
    tasks += [asyncio.create_task(watch.run_camera(cid)) for cid, _ in sources]
    await asyncio.sleep(3)  # opened, warmed up
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    runs0 = sum(m.runs for m in watch.engine.models())
    await asyncio.sleep(seconds)
    cpu = (cpu_seconds() - cpu0) / (time.monotonic() - wall0)
    runs = sum(m.runs for m in watch.engine.models()) - runs0
    rss = rss_mb()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await watch.stop()
    engine.close()
    blocked = sum(1 for r in records if isinstance(r, Event) and r.kind == "fire_lane_blocked")
    return cpu, rss, runs, blocked


def alarm_latency(sprites_bg: Path | None) -> float:
    plan = ScenePlan(enter_s=2, park_s=6, leave_s=60, gone_s=63, walk_from_s=18, walk_to_s=26, total_s=40)
    scene = Scene(load_sprites(MEDIA / "darknet/dog.jpg", MEDIA / "darknet/person.jpg", sprites_bg), plan)
    tmp = Path(tempfile.mkdtemp())
    store = StateStore(tmp / "state.db")
    book = AlarmBook(store)
    config = lane("cam", 0).model_copy(update={"grace_s": 15.0})
    analyzer = CameraAnalyzer("cam", [LaneWatch(config, book, dt.UTC)], None)
    detector = Detector(load_model(find("yolov4-tiny-coco"), 2))
    t0 = 1_790_000_000_000
    for i, (t, image) in enumerate(scene.frames()):
        now = t0 + round(t * 1000)
        frame = Frame(image, now, i + 1)
        records, run = analyzer.step(frame, True, now)
        if run:
            records += analyzer.apply(frame, detector.detect(image), now)
        records += analyzer.tick(now)
        for r in records:
            if isinstance(r, Event) and r.kind == "fire_lane_blocked":
                return (r.ts_ms - t0) / 1000 - plan.park_s - 15
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="latency and photo figures only")
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(asyncio.run(cameras_run(args.child, args.seconds, 4))))
        return
    rows = detector_latency(args.runs) + photo_levers()
    if args.quick:
        print_table("vision detectors (onnxruntime CPU; 640x360 frame)", rows)
        return
    tmp = Path(tempfile.mkdtemp())
    sprites = load_sprites(MEDIA / "darknet/dog.jpg", MEDIA / "darknet/person.jpg", None)
    never = ScenePlan(
        enter_s=99, park_s=100, leave_s=101, gone_s=102, walk_from_s=99, walk_to_s=100, total_s=20
    )
    busy = ScenePlan(enter_s=2, park_s=6, leave_s=40, gone_s=43, walk_from_s=18, walk_to_s=26, total_s=50)
    for name, plan in (("idle", never), ("busy", busy)):
        clip = Scene(sprites, plan).write(tmp / f"{name}.avi")
        # A fresh process, so RSS is the daemon's picture: one model, four cameras, nothing else.
        child = subprocess.run(
            [sys.executable, "-m", "bench.vision", "--child", str(clip), "--seconds", str(args.seconds)],
            capture_output=True,
            text=True,
            check=True,
        )
        cpu, rss, runs, blocked = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append((f"4 cameras, {name} clip: CPU", f"{cpu * 100:.1f} % of one core", "idle ≤ 10 %"))
        rows.append((f"4 cameras, {name} clip: RSS", f"{rss:.0f} MB", "≤ 200 MB"))
        rows.append(
            (f"4 cameras, {name} clip: detector", f"{runs / args.seconds:.2f} runs/s, {blocked} alarms", "")
        )
    late = alarm_latency(None)
    rows.append(("car stopped → fire_lane_blocked, minus grace", f"{late:+.1f} s (scene time)", "≤ 2 s"))
    print_table("vision (YOLOv4-tiny, onnxruntime CPU; 640x360 clips at 5 fps)", rows)


if __name__ == "__main__":
    main()
