"""The fire-lane lane: its component (gateway.lanes.fire_lanes.component), its `snapshot` command
and its report. A detector that cannot load makes the lane unavailable: each lane reports
`fire_lane_unknown` with the reason, and the rest runs.
"""

from __future__ import annotations

import base64
from typing import Any

from gateway.core import Event, Record
from gateway.core.commands import Caller, Failed, Handler, Rejected
from gateway.inference.catalog import ModelPlaces
from gateway.lanes import Lane, LaneDeps
from gateway.lanes.fire_lanes.component import FireLaneComponent
from gateway.lanes.fire_lanes.config import FireLaneConfig, VisionSection
from gateway.lanes.fire_lanes.report import FireLaneReport

SNAPSHOT_MAX_BYTES = 384 * 1024  # one MQTT message; evidence JPEGs of a sub-stream are ~40-80 KB


def snapshot_handler(component: FireLaneComponent) -> Handler:
    """The `snapshot` command: a saved evidence picture, or the camera's latest analysed frame."""
    watch = component

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

    return snapshot


REPORT = FireLaneReport  # the type of this lane's report (status.json is read back into it)


def build_lane(
    lanes: list[FireLaneConfig], deps: LaneDeps, *, vision: VisionSection, inference: ModelPlaces
) -> Lane:

    def unavailable(reason: str) -> list[Record]:
        now = deps.clock.time_ms()
        body = f"detector unavailable: {reason}"
        return [
            Event(lane.id, "fire_lane_unknown", now, {"camera": lane.camera, "reason": body}, "warning")
            for lane in lanes
        ]

    component = FireLaneComponent(vision, inference, lanes, deps)
    handlers = {"snapshot": snapshot_handler(component)}
    return Lane("fire_lanes", [component], handlers=handlers, unavailable=unavailable)


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
