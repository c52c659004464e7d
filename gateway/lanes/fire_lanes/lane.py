"""The fire-lane lane: `FireLaneWatch` as a component, its `snapshot` command and its report.

`run()` steps every watched camera in its own task; one camera's crash ends `run()`, and the
runtime's supervisor restarts the lane (never the gateway). A detector that cannot load makes the
lane unavailable: each lane reports `fire_lane_unknown` with the reason, and the rest runs.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any

from gateway.core import Event, Record
from gateway.core.commands import Caller, Failed, Handler, Rejected
from gateway.lanes import Lane, LaneDeps
from gateway.lanes.fire_lanes.watch import FireLaneWatch

SNAPSHOT_MAX_BYTES = 384 * 1024  # one MQTT message; evidence JPEGs of a sub-stream are ~40-80 KB


@dataclass(frozen=True, slots=True)
class FireLaneState:
    lane: str
    camera: str
    state: str
    alarm_open: bool
    dwell_s: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FireLaneReport:
    detector: str
    detector_runs: int
    detect_ms_avg: float | None
    detector_errors: int
    evidence_saved: int
    lanes: tuple[FireLaneState, ...]


class FireLaneComponent:
    name = "fire_lanes"

    def __init__(self, watch: FireLaneWatch) -> None:
        self.watch = watch

    async def start(self) -> None:
        await self.watch.start()  # loads and warms the detector on the inference thread

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for camera_id in self.watch.analyzers:
                group.create_task(self.watch.run_camera(camera_id), name=f"fire-lane:{camera_id}")

    async def stop(self) -> None:
        self.watch.close()

    def report(self) -> FireLaneReport:
        s = self.watch.status()
        lanes = tuple(
            FireLaneState(
                lane["lane"],
                lane["camera"],
                lane["state"],
                lane["alarm_open"],
                lane.get("dwell_s"),
                lane.get("reason"),
            )
            for cam in s["cameras"]
            for lane in cam["lanes"]
        )
        return FireLaneReport(
            s["detector"],
            s["detector_runs"],
            s["detect_ms_avg"],
            s["detector_errors"],
            s["evidence_saved"],
            lanes,
        )

    def handlers(self) -> dict[str, Handler]:
        watch = self.watch

        async def snapshot(args: dict[str, Any], _caller: Caller) -> dict[str, Any]:
            if watch.detector is None:
                raise Failed("the fire-lane detector is not running")
            if "evidence_id" in args:
                evidence_id = args["evidence_id"]
                picture = watch.evidence.get(evidence_id)
                if picture is None:
                    raise Rejected(f"unknown evidence: {evidence_id} (deleted by retention, or never saved)")
            else:
                camera = args["camera_id"]
                if camera not in watch.analyzers:
                    known = ", ".join(sorted(watch.analyzers)) or "none"
                    raise Rejected(f"unknown camera: {camera} (cameras watching fire lanes: {known})")
                taken = watch.snapshot(camera)
                if taken is None:
                    raise Failed(f"camera {camera} has not delivered a frame yet")
                evidence_id, picture = taken
            if len(picture) > SNAPSHOT_MAX_BYTES:
                raise Failed(
                    f"evidence {evidence_id} is {len(picture)} bytes, above {SNAPSHOT_MAX_BYTES}: "
                    "fetch it on the gateway"
                )
            return {
                "evidence_id": evidence_id,
                "jpeg_base64": base64.b64encode(picture).decode(),
                "bytes": len(picture),
            }

        return {"snapshot": snapshot}


REPORT = FireLaneReport  # the type of this lane's report (status.json is read back into it)


def build_lane(config: Any, deps: LaneDeps) -> Lane:
    lanes = config.fire_lanes

    def unavailable(reason: str) -> list[Record]:
        now = deps.clock.time_ms()
        body = f"detector unavailable: {reason}"
        return [
            Event(lane.id, "fire_lane_unknown", now, {"camera": lane.camera, "reason": body}, "warning")
            for lane in lanes
        ]

    watch = FireLaneWatch(
        config.vision,
        lanes,
        deps.frames,
        deps.book,
        deps.store,
        deps.clock,
        deps.emit,
        deps.state_dir,
        deps.engine(),
    )
    component = FireLaneComponent(watch)
    return Lane("fire_lanes", [component], handlers=component.handlers(), unavailable=unavailable)


def render(report: FireLaneReport) -> list[str]:
    from rich.markup import escape as esc  # names, faults and reasons are data, never markup

    lines = [
        f"fire lanes: detector {esc(report.detector)}, {report.detector_runs} runs, "
        f"{report.detect_ms_avg} ms average"
    ]
    colours = {"violation": "red", "unknown": "yellow", "parked": "yellow"}
    for lane in report.lanes:
        colour = colours.get(lane.state, "green")
        extra = f", {lane.dwell_s} s parked" if lane.dwell_s is not None else ""
        extra += f" ({esc(lane.reason)})" if lane.reason else ""
        lines.append(
            f"  [{colour}]{esc(lane.lane)} on {esc(lane.camera)}: {esc(lane.state.upper())}{extra}[/]"
        )
    return lines
