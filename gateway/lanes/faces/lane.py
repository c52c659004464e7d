"""The face access lane: `FaceAccessWatch` as a component, its `faces_delete` command and report.

A model or gallery problem makes the lane unavailable (`face_access_unavailable` per entrance:
doors open by card/PIN only) while the gateway runs; `faces_delete` still works then, on the file.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.core import Event, Record
from gateway.core.commands import Caller, Failed, Handler, Rejected
from gateway.inference.catalog import ModelPlaces
from gateway.lanes import DoorOpener, Lane, LaneDeps
from gateway.lanes.faces.access import FaceAccessWatch
from gateway.lanes.faces.config import FaceAccessConfig, FacesSection
from gateway.lanes.faces.keys import face_paths
from gateway.lanes.faces.passages import delete_resident
from gateway.lanes.faces.report import FaceAccessReport


class FaceAccessComponent:
    name = "face_access"

    def __init__(self, watch: FaceAccessWatch) -> None:
        self.watch = watch

    async def start(self) -> None:
        await self.watch.start()  # models on the inference thread, then the gallery

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.watch.poll_gallery(), name="face-gallery")
            for camera, entrances in self.watch.cameras().items():
                group.create_task(self.watch.run_camera(camera, entrances), name=f"face-access:{camera}")

    async def stop(self) -> None:
        self.watch.close()

    def report(self) -> FaceAccessReport:
        return self.watch.report()


REPORT = FaceAccessReport  # the type of this lane's report (status.json is read back into it)


def build_lane(
    entrances: list[FaceAccessConfig], deps: LaneDeps, *, faces: FacesSection, inference: ModelPlaces
) -> Lane:
    from gateway.inference.catalog import configured
    from gateway.lanes.faces.gallery import Gallery, GalleryError
    from gateway.lanes.faces.keys import GalleryKeyError
    from gateway.releases.formats import FormatGate

    def unavailable(reason: str) -> list[Record]:
        now = deps.clock.time_ms()
        return [
            Event(
                e.id,
                "face_access_unavailable",
                now,
                {"camera": e.camera, "door": e.door, "reason": reason},
                "warning",
            )
            for e in entrances
        ]

    def doors() -> DoorOpener:
        if deps.doors is None:  # config validation requires the door: only doors that failed to build
            raise RuntimeError("the doors are not running")
        return deps.doors

    watch = FaceAccessWatch(
        faces,
        entrances,
        deps.frames,
        doors,
        deps.store,
        deps.clock,
        deps.emit,
        deps.state_dir,
        deps.engine(),
        configured(inference),
        deps.timezone,
        deps.tags,
    )
    component = FaceAccessComponent(watch)

    async def faces_delete(args: dict[str, Any], _caller: Caller) -> dict[str, Any]:
        resident_id = args["resident_id"]
        try:
            if watch.gallery is not None:
                pseudonym = watch.gallery.pseudonym(resident_id)
                removed = watch.delete(resident_id)
            else:  # the lane is down (a model problem): deletion must still work
                path, key = face_paths(faces, deps.state_dir)
                gallery = Gallery(path, key, gate=FormatGate.at(deps.state_dir))
                try:
                    pseudonym = gallery.pseudonym(resident_id)
                    removed = delete_resident(gallery, deps.store, resident_id)
                finally:
                    gallery.close()
        except (GalleryError, GalleryKeyError) as exc:
            raise Failed(str(exc)) from None
        if removed is None:  # (the result goes upstream: it does not repeat the id either)
            raise Rejected("unknown resident: no such resident in the face gallery")
        # The command named the resident; its result goes upstream: the pseudonym only.
        return {"resident": pseudonym, "templates_deleted": removed, "purged": True}

    handlers: dict[str, Handler] = {"faces_delete": faces_delete}
    return Lane("face_access", [component], handlers=handlers, unavailable=unavailable)


def render(report: FaceAccessReport) -> list[str]:
    from rich.markup import escape as esc  # names, faults and reasons are data, never markup

    lines = [
        f"face access: {report.residents} residents, max distance {report.threshold}, "
        f"liveness {esc(report.liveness)}"
    ]
    for e in report.entrances:
        state = "LOCKED OUT" if e.locked else ("watching" if e.camera_online else "CAMERA OFFLINE")
        colour = "green" if state == "watching" else "red"
        lines.append(
            f"  [{colour}]{esc(e.id)} on {esc(e.camera)} → door {esc(e.door)}: {state}[/], "
            f"{e.granted} granted, {e.denied} denied, {e.pipeline_ms_avg} ms per frame"
        )
    return lines
