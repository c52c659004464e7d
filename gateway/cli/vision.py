"""`lintel camera snapshot|probe` and `lintel models list|verify|bench`: installer tools.

`camera snapshot` opens the camera itself (RTSP and HTTP cameras take several clients; a USB
camera only when the daemon is stopped), runs the configured detector on one fresh frame and draws
the lanes, the detections and each lane's state (from the state database) into a PNG/JPEG, so an
installer checks a polygon by looking at it. `camera probe` measures what the stream delivers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from gateway.cli.args import action, tool
from gateway.cli.config_file import read_config
from gateway.cli.output import console, err_console, esc, print_json, table


def add_parsers(sub: Any) -> None:
    actions = tool(sub, "camera", "camera tools: annotated snapshot, stream probe")
    q = action(actions, "snapshot", "one frame with lanes, detections and lane states drawn on it")
    q.add_argument("camera_id")
    q.add_argument("--out", required=True, help="picture to write (.png or .jpg)")
    q = action(actions, "probe", "resolution, frame rate and latency of a camera's stream")
    q.add_argument("camera_id")
    q.add_argument("--seconds", type=float, default=5.0)

    actions = tool(sub, "models", "ONNX models: list, verify, benchmark")
    action(actions, "list", "models the gateway knows")
    action(actions, "verify", "check every model file's sha256")
    q = action(actions, "bench", "detector latency per frame at 1 and 2 threads")
    q.add_argument("--model", default=None, help="model name (default: the configured detector)")
    q.add_argument("--runs", type=int, default=20)


def _catalog(args: argparse.Namespace) -> tuple[dict[str, Any], Any] | None:
    from gateway.inference.catalog import ModelError, configured

    loaded = read_config(args.config)
    if loaded is None:
        return None
    try:
        models = configured(loaded.config.inference)
    except ModelError as exc:
        err_console.print(f"[red]{esc(exc)}[/]")
        return None
    return models, loaded


def cmd_models(args: argparse.Namespace) -> int:
    from gateway.inference.catalog import ModelError

    found = _catalog(args)
    if found is None:
        return 1
    models, loaded = found
    if args.models_command == "bench":
        return _bench(args, models, loaded)
    rows = []
    failed = 0
    for m in models.values():
        state = "present" if m.file.is_file() else "missing"
        if args.models_command == "verify":
            try:
                m.verify()
                state = "ok"
            except ModelError as exc:
                state, failed = str(exc), failed + 1
        rows.append(
            {
                "name": m.name,
                "task": m.task,
                "licence": m.licence,
                "layout": m.layout,
                "input": f"{m.input.width}x{m.input.height} {m.input.colour}",
                "classes": len(m.classes),
                "file": str(m.file),
                "sha256": m.sha256,
                "state": state,
                "source": "{}:{}=={}".format(
                    m.source.get("registry", "?"), m.source.get("package", "?"), m.source.get("version", "?")
                ),
            }
        )
    if args.json:
        print_json({"models": rows})
    else:
        t = table("models", ["name", "state", "layout", "input", "licence", "source"])
        for r in rows:
            colour = "green" if r["state"] in ("ok", "present") else "red"
            t.add_row(
                r["name"],
                f"[{colour}]{esc(r['state'])}[/]",
                r["layout"],
                r["input"],
                r["licence"],
                r["source"],
            )
        console.print(t)
    return 1 if failed else 0


def _bench(args: argparse.Namespace, models: dict[str, Any], loaded: Any) -> int:
    import numpy as np

    from gateway.inference.catalog import ModelError, pick
    from gateway.inference.engine import load_model
    from gateway.lanes.faces.detect import FaceDetector
    from gateway.lanes.faces.embed import Embedder
    from gateway.lanes.fire_lanes.detector import Detector, latency_ms

    try:
        manifest = pick(args.model or loaded.config.vision.detector, models)
    except ModelError as exc:
        err_console.print(f"[red]{esc(exc)}[/]")
        return 1
    name = manifest.name
    rng = np.random.default_rng(1)
    # what each kind of model is given at run time: a camera frame, or an aligned face chip
    height, width = (
        (manifest.input.height, manifest.input.width)
        if manifest.task in ("face_embed", "face_pad")
        else (360, 640)
    )
    frame = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    results = []
    for threads in (1, 2):
        model = load_model(manifest, threads)
        run: Callable[[Any], object]
        if manifest.task == "face_detect":
            run = FaceDetector(model).detect
        elif manifest.task == "face_embed":
            run = Embedder(model).embed
        elif manifest.task == "face_pad":  # one crop, already cut to the model's input size
            run = pad_runner(model)
        else:
            run = Detector(model).detect
        p50, p95 = latency_ms(run, frame, args.runs)
        results.append({"threads": threads, "p50_ms": round(p50, 1), "p95_ms": round(p95, 1)})
    if args.json:
        print_json({"model": name, "results": results})
    else:
        t = table(
            f"{esc(name)}: one {esc(width)}x{esc(height)} input, preprocessing + inference + decoding",
            ["threads", "p50", "p95"],
        )
        for r in results:
            t.add_row(str(r["threads"]), f"{esc(r['p50_ms'])} ms", f"{esc(r['p95_ms'])} ms")
        console.print(t)
    return 0


def _camera(args: argparse.Namespace) -> tuple[Any, Any] | None:
    loaded = read_config(args.config)
    if loaded is None:
        return None
    cams = {s.id: s for s in loaded.config.sources if s.type == "camera"}
    if args.camera_id not in cams:
        known = ", ".join(sorted(cams)) or "none"
        err_console.print(
            f"[red]no camera {esc(repr(args.camera_id))} in the config; cameras: {esc(known)}[/]"
        )
        return None
    return cams[args.camera_id], loaded


def cmd_camera(args: argparse.Namespace) -> int:
    from drivers.camera.capture import open_capture
    from drivers.camera.opening import CameraRefused

    found = _camera(args)
    if found is None:
        return 1
    cfg, loaded = found
    started = time.perf_counter()
    try:
        cap = open_capture(cfg)
    except CameraRefused as exc:  # untrusted certificate, oversized stream: the reason says the fix
        from rich.markup import escape

        err_console.print(f"[red]{escape(str(exc))}[/]", highlight=False)
        return 1
    except OSError as exc:
        err_console.print(f"[red]{esc(exc)}[/] (a USB camera is held by the running daemon: stop it first)")
        return 1
    try:
        ok, image = cap.read()
        first_s = time.perf_counter() - started
        if not ok:
            err_console.print("[red]the stream opened but delivered no frame[/]")
            return 1
        if args.camera_command == "probe":
            return _probe(args, cap, image, first_s)
        for _ in range(3):  # drop what the decoder buffered: draw on a fresh frame
            ok, newer = cap.read()
            image = newer if ok else image
    finally:
        cap.release()
    return _snapshot(args, cfg, loaded, image)


def _probe(args: argparse.Namespace, cap: Any, image: Any, first_s: float) -> int:
    reads = []
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        ok, newer = cap.read()
        if not ok:
            break
        image = newer
        reads.append(time.perf_counter() - t0)
    total = sum(reads)
    body = {
        "camera": args.camera_id,
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "first_frame_s": round(first_s, 2),
        "frames": len(reads),
        "fps": round(len(reads) / total, 2) if total else 0.0,
        "read_ms_p50": round(statistics.median(reads) * 1000, 2) if reads else None,
    }
    if args.json:
        print_json(body)
    else:
        t = table(f"camera {esc(args.camera_id)}", ["measure", "value"])
        for k, v in body.items():
            t.add_row(k, str(v))
        console.print(t)
    return 0 if reads else 1


def _snapshot(args: argparse.Namespace, cfg: Any, loaded: Any, image: Any) -> int:
    import cv2

    from gateway.inference.catalog import ModelError, configured, pick
    from gateway.inference.engine import load_model
    from gateway.lanes.fire_lanes.annotate import draw
    from gateway.lanes.fire_lanes.component import NS
    from gateway.lanes.fire_lanes.detector import Detector
    from gateway.storage.state import StateStore, state_path

    vision = loaded.config.vision
    lanes = [lane for lane in loaded.config.fire_lanes if lane.camera == cfg.id]
    states: dict[str, Any] = {}
    if state_path(loaded.state_dir).exists():
        store = StateStore(state_path(loaded.state_dir), read_only=True)
        states = store.load(NS)
        store.close()
    detections = []
    try:
        manifest = pick(vision.detector, configured(loaded.config.inference))
        detections = Detector(
            load_model(manifest, loaded.config.inference.threads),
            vision.min_score,
            input_size=vision.detector_input(),
        ).detect(image)
    except ModelError as exc:
        err_console.print(f"[yellow]no detections drawn: {esc(exc)}[/]")
    drawn = draw(
        image,
        [(lane.id, lane.polygon, states.get(lane.id, {}).get("state", "absent")) for lane in lanes],
        detections,
        f"{cfg.id} {time.strftime('%Y-%m-%d %H:%M:%S')}",
    )
    if not cv2.imwrite(args.out, drawn):
        err_console.print(f"[red]cannot write {esc(args.out)} (use a .png or .jpg name)[/]")
        return 1
    body = {
        "out": args.out,
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "lanes": [
            {"lane": lane.id, "state": states.get(lane.id, {}).get("state", "absent")} for lane in lanes
        ],
        "detections": [
            {"label": d.label, "score": round(d.score, 2), "box": [round(v) for v in d.box]}
            for d in detections
        ],
    }
    if args.json:
        print_json(body)
    else:
        console.print(
            f"wrote {esc(args.out)}: {len(detections)} detections, lanes: "
            + (
                ", ".join(f"{esc(x['lane'])} {esc(x['state'])}" for x in body["lanes"])
                or "none on this camera"
            )
        )
    return 0


def pad_runner(model: Any) -> Callable[[Any], object]:
    import numpy as np

    def run(crop: Any) -> object:
        return model.run(np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32))

    return run
