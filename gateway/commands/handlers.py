"""The commands this gateway executes, bound to the running daemon's parts.

Each handler takes the validated `args` and the context, returns the result object for `ok`,
raises `Rejected` for a refusal it can explain and `Failed` when it acted and it went wrong.
`snapshot` is registered when fire lanes are configured (an annotated picture of a camera, saved as
evidence, or a stored evidence picture by id, as base64 JPEG); `faces_delete` when face access is
configured (the resident's rows and templates are removed from the gallery file, its WAL and
memory, even while the face models are unavailable). Otherwise the router answers them
`rejected: unavailable` with the reason.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.alarms import AckOutcome
from gateway.commands.router import CommandContext, Failed, Handler, Rejected
from gateway.doors import DoorError

if TYPE_CHECKING:
    from gateway.runtime.daemon import Daemon

SNAPSHOT_MAX_BYTES = 384 * 1024  # one MQTT message; evidence JPEGs of a sub-stream are ~40-80 KB


def build_handlers(daemon: Daemon) -> dict[str, Handler]:
    async def ping(_args: dict[str, Any], _ctx: CommandContext) -> dict[str, Any]:
        return {
            "pong": True,
            "version": __version__,
            "uptime_s": round(time.monotonic() - daemon.started_mono, 1),
            "config_sha256": daemon.loaded.sha256,
        }

    async def outbox_stats(_args: dict[str, Any], _ctx: CommandContext) -> dict[str, Any]:
        return daemon.writer.snapshot()

    async def alarm_ack(args: dict[str, Any], ctx: CommandContext) -> dict[str, Any]:
        alarm_id = args["alarm_id"]
        outcome, events = daemon.book.ack(alarm_id, daemon.clock.time_ms(), ctx.by, ctx.origin)
        if outcome == AckOutcome.UNKNOWN:
            raise Rejected(f"unknown alarm: no open alarm has id {alarm_id}")
        for event in events:
            daemon.pipeline.submit(event)
        alarm = daemon.book.by_id[alarm_id]
        return {"alarm_id": alarm_id, "kind": alarm.kind, "already_acked": outcome == AckOutcome.ALREADY}

    async def reload_config(args: dict[str, Any], _ctx: CommandContext) -> dict[str, Any]:
        return await daemon.reload(args.get("config_toml"), args.get("expect_sha256"))

    handlers: dict[str, Handler] = {
        "ping": ping,
        "outbox_stats": outbox_stats,
        "alarm_ack": alarm_ack,
        "reload_config": reload_config,
    }

    async def door_pulse(args: dict[str, Any], ctx: CommandContext) -> dict[str, Any]:
        door = args["door"]
        if door not in daemon.doors:
            known = ", ".join(sorted(daemon.doors.doors)) or "none"
            raise Rejected(f"unknown door: {door} (configured: {known})")
        try:
            return await daemon.doors.pulse(door, args.get("pulse_s"), by=ctx.by, via=ctx.origin)
        except DoorError as exc:
            raise Failed(str(exc)) from None

    if daemon.config.doors:
        handlers["door_pulse"] = door_pulse

    async def snapshot(args: dict[str, Any], _ctx: CommandContext) -> dict[str, Any]:
        fire = daemon.fire
        if fire is None:
            raise Failed(f"the fire-lane detector is not running: {daemon.fire_error}")
        if "evidence_id" in args:
            picture = fire.evidence.get(args["evidence_id"])
            if picture is None:
                raise Rejected(
                    f"unknown evidence: {args['evidence_id']} (deleted by retention, or never saved)"
                )
            evidence_id = args["evidence_id"]
        else:
            camera = args["camera_id"]
            if camera not in fire.analyzers:
                known = ", ".join(sorted(fire.analyzers)) or "none"
                raise Rejected(f"unknown camera: {camera} (cameras watching fire lanes: {known})")
            taken = fire.snapshot(camera)
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

    if daemon.config.fire_lanes:
        handlers["snapshot"] = snapshot

    async def faces_delete(args: dict[str, Any], _ctx: CommandContext) -> dict[str, Any]:
        from gateway.faces.access import delete_resident, face_paths
        from gateway.faces.gallery import Gallery, GalleryError
        from gateway.faces.keys import GalleryKeyError

        resident_id = args["resident_id"]
        try:
            if daemon.faces is not None and daemon.faces.gallery is not None:
                removed = daemon.faces.delete(resident_id)
            else:  # the lane is down (a model problem): deletion must still work
                path, key = face_paths(daemon.config.faces, daemon.loaded.state_dir)
                gallery = Gallery(path, key)
                try:
                    removed = delete_resident(gallery, daemon.state_store, resident_id)
                finally:
                    gallery.close()
        except (GalleryError, GalleryKeyError) as exc:
            raise Failed(str(exc)) from None
        if removed is None:
            raise Rejected(f"unknown resident: {resident_id} is not in the face gallery")
        return {"resident_id": resident_id, "templates_deleted": removed, "purged": True}

    if daemon.config.face_access:
        handlers["faces_delete"] = faces_delete
    return handlers
