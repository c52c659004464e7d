"""Where a whole building gateway's memory goes, one component at a time, in one fresh process.

    python -m bench.memory_steps [--embedder NAME] [--h264]

RSS (VmRSS; anonymous and file-backed parts) after each step, in the order a building gateway
gets them: the interpreter, the daemon's own imports, numpy, OpenCV, onnxruntime, then each
model loaded and warmed up by the engine (as `lintel run` loads them) and run 20 times on a
640×360 frame (the presentation-attack detector's two MiniFASNet models, which an entrance with
`liveness = "model"` loads, on an 80×80 crop each), with the highest RSS seen during those runs
(a model's activations live only while it runs: the engine's arena is shrunk after each run),
then five 640×360 MJPEG clips
decoded at once on their own threads (4 fire-lane cameras and the door camera) through the camera
driver's `open_capture`; `--h264` adds the same clips as H.264 (what IP cameras send; transcoded
by an installed ffmpeg) at `decode_threads` 1 and 0 (one per core). It explains
bench/memory.py's figure; the daemon adds its lanes, frames in flight and the allocator's slack.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

STATUS_KEYS = ("VmRSS", "RssAnon", "RssFile", "VmHWM")


def status() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_KEYS:
            out[key] = int(value.split()[0]) / 1024
    return out


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from the current RSS


class Steps:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []
        self.last = 0.0

    def mark(self, what: str, note: str = "") -> None:
        s = status()
        self.rows.append(
            (
                what,
                f"{s['VmRSS']:.1f} MB ({s['VmRSS'] - self.last:+.1f}): anon {s['RssAnon']:.1f}, "
                f"file {s['RssFile']:.1f}{note}",
                "",
            )
        )
        self.last = s["VmRSS"]


def decode(paths: list[Path], frames: int, steps: Steps, what: str, threads: int = 1) -> None:
    """Each clip opened by the camera driver (`open_capture`, `decode_threads`) on its own thread,
    keeping its last frame as a camera does; measured while all are open."""
    from drivers.camera.capture import open_capture
    from drivers.camera.config import CameraConfig

    ready, done = threading.Barrier(len(paths) + 1), threading.Barrier(len(paths) + 1)

    def play(i: int, path: Path) -> None:
        config = CameraConfig(id=f"cam-{i}", type="camera", url=str(path), decode_threads=threads)
        cap = open_capture(config)
        latest = None
        for _ in range(frames):
            ok, image = cap.read()
            latest = image if ok else latest
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ready.wait()
        done.wait()
        cap.release()
        del latest

    import cv2

    threads_before = len(list(Path("/proc/self/task").iterdir()))
    workers = [threading.Thread(target=play, args=(i, p)) for i, p in enumerate(paths)]
    for t in workers:
        t.start()
    ready.wait()
    extra = len(list(Path("/proc/self/task").iterdir())) - threads_before - len(paths)
    steps.mark(f"{len(paths)} {what} open, decode_threads {threads}", f"; {extra} decoder threads")
    done.wait()
    for t in workers:
        t.join()
    steps.mark("  … released")


def h264(clip: Path) -> Path | None:
    """The clip as H.264 (what IP cameras send), if an ffmpeg program is installed."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return None
    out = clip.with_suffix(".mp4")
    subprocess.run(
        [ffmpeg, "-loglevel", "error", "-y", "-i", str(clip), "-c:v", "libx264", "-g", "50", str(out)],
        check=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", help="a face embedder model (default: [faces] embedder's default)")
    parser.add_argument("--h264", action="store_true", help="also the clips as H.264 (needs ffmpeg)")
    args = parser.parse_args()
    steps = Steps()
    steps.mark("interpreter (+ argparse, pathlib)")
    import gateway.cli.run  # what `lintel run` imports before the lanes
    import gateway.runtime.daemon  # noqa: F401

    steps.mark("the daemon's imports (config, runtime, outbox, drivers)")
    import numpy as np

    steps.mark("numpy")
    import cv2

    steps.mark(f"OpenCV {cv2.__version__}")
    import onnxruntime  # noqa: F401

    steps.mark("onnxruntime")
    from bench.common import print_table
    from gateway.inference.catalog import catalog
    from gateway.inference.engine import InferenceEngine
    from gateway.lanes.faces.config import FacesSection
    from gateway.lanes.faces.detect import FaceDetector
    from gateway.lanes.faces.embed import Embedder
    from gateway.lanes.fire_lanes.detector import Detector

    models = catalog()
    embedder_name = args.embedder or FacesSection().embedder
    from gateway.lanes.faces.pad import PadModel

    engine = InferenceEngine(1)
    frame = (np.random.default_rng(0).random((360, 640, 3)) * 255).astype(np.uint8)
    chip = np.ascontiguousarray(frame[:112, :112])
    section = FacesSection()
    for name in ("yolov4-tiny-coco-int8", "yunet-2023mar", embedder_name, *section.pad_models):
        model = engine.model(models[name])
        steps.mark(f"{name} loaded and warmed up")
        task = model.manifest.task
        if task == "detect":
            run: Callable[[], object] = partial(Detector(model).detect, frame)
        elif task == "face_detect":
            run = partial(FaceDetector(model).detect, frame)
        elif task == "face_pad":
            run = partial(PadModel(model).live_probability_of, np.ascontiguousarray(frame[:80, :80]))
        else:
            run = partial(Embedder(model).embed, chip)
        run()
        before = status()["VmRSS"]
        reset_peak()
        for _ in range(20):
            run()
        steps.mark("  … run 20 times", f"; during a run up to +{status()['VmHWM'] - before:.1f}")
    from gateway.cli.demo_building import demo_camera_text, demo_face_text

    with tempfile.TemporaryDirectory() as tmp:
        demo_camera_text(Path(tmp)), demo_face_text(Path(tmp))  # write the demo's two clips
        court, door = Path(tmp) / "demo-fire-lane.avi", Path(tmp) / "demo-door.avi"
        decode([court] * 4 + [door], 100, steps, "640×360 MJPEG clips (the bench's cameras)")
        if args.h264 and (court264 := h264(court)) and (door264 := h264(door)):
            for threads in (1, 0):
                decode([court264] * 4 + [door264], 100, steps, "640×360 H.264 clips", threads)
    print_table("RSS of one process, component by component (bench/memory_steps.py)", steps.rows)


if __name__ == "__main__":
    main()
