"""Each camera: does the stream open, at what resolution and frame rate. USB cameras are one
process's at a time: with the gateway running they are not opened (a ⚠ says so)."""

from __future__ import annotations

import threading
import time
from typing import Any

from drivers.camera.config import CameraConfig, redact
from gateway.diagnostics.context import Context
from gateway.diagnostics.report import Finding, fail, ok, warn

MEASURE_S = 1.0


def check_cameras(ctx: Context) -> list[Finding]:
    assert ctx.loaded is not None
    cams = [s for s in ctx.loaded.config.sources if isinstance(s, CameraConfig) and s.enabled]
    return [_camera(ctx, cam) for cam in cams]


def _camera(ctx: Context, cam: CameraConfig) -> Finding:
    check = f"camera.{cam.id}"
    shown = redact(cam.url)
    if cam.kind == "usb" and ctx.daemon is not None:
        return warn(
            check,
            f"{cam.id} ({shown}) not opened: the running gateway holds the USB camera",
            "its frame rate is in `lintel status`; stop the gateway to test the camera here",
        )
    timeout = min(cam.open_timeout_s, ctx.timeout_s)
    quick = cam.model_copy(
        update={"open_timeout_s": timeout, "read_timeout_s": min(cam.read_timeout_s, timeout)}
    )
    result: dict[str, Any] = {}
    worker = threading.Thread(target=_measure, args=(quick, result), name=f"doctor-{cam.id}", daemon=True)
    worker.start()
    # OpenCV does not always honour its own timeouts (the stall watchdog exists for that)
    worker.join(timeout * 2 + MEASURE_S + 2)
    fix = (
        "check the camera's power and network cable (PoE switch port), its address in the url, and the "
        "user name and password file; open the same address in VLC from a laptop on that network"
    )
    if worker.is_alive():
        return fail(check, f"{cam.id} ({shown}) hangs: no frame and no error", fix)
    if "error" in result:
        return fail(check, f"{cam.id} ({shown}): {result['error']}", fix)
    w, h, fps = result["width"], result["height"], result["fps"]
    return ok(check, f"{cam.id} ({shown}) opens in {result['open_s']:.1f} s: {w}x{h}, {fps:.1f} fps")


def _measure(cam: CameraConfig, result: dict[str, Any]) -> None:
    from drivers.camera.capture import open_capture

    started = time.monotonic()
    try:
        cap = open_capture(cam)
    except OSError as exc:
        result["error"] = f"the stream does not open ({exc})"
        return
    except Exception as exc:  # a broken password file, an OpenCV error: reported, not raised
        result["error"] = f"the stream does not open ({type(exc).__name__}: {exc})"
        return
    try:
        got, image = cap.read()
        if not got:
            result["error"] = "the stream opened but sent no picture"
            return
        result["open_s"] = time.monotonic() - started
        result["height"], result["width"] = int(image.shape[0]), int(image.shape[1])
        frames, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < MEASURE_S:
            got, _ = cap.read()
            if not got:
                break
            frames += 1
        elapsed = time.monotonic() - t0
        result["fps"] = frames / elapsed if elapsed > 0 else 0.0
    finally:
        cap.release()
