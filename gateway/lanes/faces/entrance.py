"""One face entrance at run time: a frame's probe → its decision rule → the decision's events and
the door pulse.

A resident's decision comes in two halves (`decision.Pending`, issue 26): the liveness check costs
as much CPU as a frame's analysis (~45 ms with `model`), so it runs as its own job on the
inference thread (`check`), never on the event loop and never inside a frame's analysis; the event
loop then finishes the decision (`finish`: the second factor's `TagHub`, permissions, the door),
so no single step holds a thread for both. The caller (`access.FaceAccessWatch.run_camera`) awaits
the check before it looks at the camera's next frame, and finishes the decision only if the lane
is still running and the gallery still names the same resident: a stop or a reload during the
check cancels that await, so nothing opens.

A grant pulses the door through `Doors` (Modbus coil on the bus's scheduler; never held open on
failure) without waiting for it; every decision is an `access_granted` / `access_denied` event
with ids and numbers only; the resident is named by the gallery's pseudonym, never by the
resident id, in events, door pulses and the anti-passback rows of `state.db`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2

from gateway.core import Clock, Event, Record
from gateway.inference.engine import InferenceEngine
from gateway.inference.evidence import EvidenceStore
from gateway.lanes import DoorError, DoorOpener
from gateway.lanes.faces.config import FaceAccessConfig
from gateway.lanes.faces.decision import Decider, Observation
from gateway.lanes.faces.liveness import LivenessResult
from gateway.lanes.faces.match import Match
from gateway.lanes.faces.outcome import Decision, Pending
from gateway.lanes.faces.passages import NS
from gateway.lanes.faces.pipeline import Probe
from gateway.lanes.faces.report import EntranceReport
from gateway.storage.state import StateStore

log = logging.getLogger("lintel.faces")


def new_stats() -> dict[str, Any]:
    return {
        "frames": 0, "usable": 0, "granted": 0, "denied": 0, "pipeline_ms": 0.0, "last": None,
        "reasons": Counter(),  # denials by reason (status: denied_reasons)
    }  # fmt: skip


@dataclass
class EntranceFlow:
    entrance: FaceAccessConfig
    decider: Decider
    engine: InferenceEngine
    doors: Callable[[], DoorOpener]  # the daemon's current Doors (a reload replaces them)
    store: StateStore
    clock: Clock
    submit: Callable[[Record], bool]
    pseudonym: Callable[[str], str]  # resident id → the gallery's pseudonym (events, state.db)
    crops: EvidenceStore | None = None  # unknown faces' crops, when kept
    stats: dict[str, Any] = field(default_factory=new_stats)
    errors: int = 0

    def observe(
        self, ts_ms: int, probe: Probe, match: Match | None, elapsed_ms: float, now_ms: int
    ) -> Pending | None:
        """Feed one analysed frame to the decision rule (on the event loop: it reads loop-owned
        state). A stranger's or an ambiguous decision is acted on now; a resident's is returned
        as a `Pending` for `check` and `finish`."""
        stats = self.stats
        stats["frames"] += 1
        stats["pipeline_ms"] += elapsed_ms
        if match is None:
            if probe.face is None:  # capture times, as the rule's last face: not the analysis's
                self.decider.no_face(ts_ms)
            return None
        stats["usable"] += 1
        assert probe.face is not None
        # the aligned chip always goes along: liveness needs it; a crop is saved only when
        # keep_unknown_crops is on (_decided)
        obs = Observation(
            ts_ms, match, self.decider.label(match), probe.face.landmarks, probe.chip, probe.vector, None,
            probe.context, probe.pad_crops,
        )  # fmt: skip
        got, locked = self.decider.step(obs, now_ms)
        if isinstance(got, Pending):
            return got
        if got is not None:
            self._act(got, locked, now_ms)
        return None

    async def check(self, pending: Pending) -> LivenessResult:
        """The pending decision's liveness check, as its own jobs on the inference thread (one
        per stage: `Pending.stages`; `off` costs nothing: answered here). A check that raises
        refuses the face (fail safe)."""
        if pending.liveness.name == "off":
            return pending.check()
        try:
            for stage in pending.stages():
                if (result := await self.engine.submit(stage)) is not None:
                    return result
            raise RuntimeError("no stage of the check answered")
        except Exception as exc:
            self.errors += 1
            log.exception("entrance %s: liveness check failed", self.entrance.id)
            return LivenessResult(False, f"the check failed: {type(exc).__name__}")

    def finish(self, pending: Pending, live: LivenessResult, now_ms: int) -> Decision:
        """The second half, on the event loop: the rest of the rules, then events and the door."""
        decision, locked = self.decider.finish(pending, live, now_ms)
        self._act(decision, locked, now_ms)
        return decision

    def _act(self, decision: Decision, locked: bool, now_ms: int) -> None:
        """Events and the door for a decision; the lockout it started, if any."""
        self._decided(decision, now_ms)
        if locked:
            self._locked(now_ms)

    def _locked(self, now_ms: int) -> None:
        entrance = self.entrance
        log.warning("entrance %s: too many denied faces, locked for %.0f s", entrance.id, entrance.lockout_s)
        body = {
            "door": entrance.door,
            "entrance": entrance.id,
            "until_ms": self.decider.locked_until_ms,
            "max_attempts_per_minute": entrance.max_attempts_per_minute,
        }
        self.submit(Event(entrance.id, "access_lockout", now_ms, body))

    def _decided(self, decision: Decision, now_ms: int) -> None:
        entrance, stats = self.entrance, self.stats
        body = decision.body(entrance)
        if body.get("resident_id") is not None:  # upstream and on disk: the pseudonym only
            body["resident_id"] = self.pseudonym(body["resident_id"])
        stats["last"] = {"ts_ms": now_ms, "granted": decision.granted, "reason": decision.reason}
        if decision.granted:
            stats["granted"] += 1
            self.store.save(NS, {body["resident_id"]: {"direction": entrance.direction, "ts_ms": now_ms}})
            self.submit(Event(entrance.id, "access_granted", now_ms, body))
            if self.doors().busy(entrance.door):
                log.info("entrance %s: door %s is already open", entrance.id, entrance.door)
            else:
                asyncio.get_running_loop().create_task(self._open(body["resident_id"]))
            return
        stats["denied"] += 1
        stats["reasons"][decision.reason] += 1
        if decision.liveness_detail:
            log.info("entrance %s: liveness refused a face: %s", entrance.id, decision.liveness_detail)
        if decision.chip is not None and self.crops is not None:
            ok, data = cv2.imencode(".jpg", decision.chip)
            if ok:
                body["crop_id"] = self.crops.save(entrance.id, data.tobytes(), now_ms)
        self.submit(Event(entrance.id, "access_denied", now_ms, body))

    async def _open(self, resident_id: str) -> None:
        """`resident_id` here is the pseudonym (as in the events)."""
        entrance = self.entrance
        try:
            await self.doors().pulse(entrance.door, via="face", entrance=entrance.id, resident_id=resident_id)
        except DoorError as exc:
            self.errors += 1
            log.error("entrance %s: door did not open for a granted face: %s", entrance.id, exc)
            body = {
                "door": entrance.door,
                "entrance": entrance.id,
                "resident_id": resident_id,
                "error": str(exc),
            }
            self.submit(Event(entrance.id, "access_door_failed", self.clock.time_ms(), body, "alarm"))


def entrance_report(
    e: FaceAccessConfig, flow: EntranceFlow | None, online: bool, now_ms: int
) -> EntranceReport:
    """The entrance's camera and decisions (zeros before the lane started)."""
    s = flow.stats if flow is not None else new_stats()
    last = s["last"] or {}
    return EntranceReport(
        id=e.id,
        camera=e.camera,
        door=e.door,
        camera_online=online,
        locked=flow is not None and flow.decider.locked(now_ms),
        frames=s["frames"],
        granted=s["granted"],
        denied=s["denied"],
        pipeline_ms_avg=round(s["pipeline_ms"] / s["frames"], 1) if s["frames"] else None,
        last_decision_ms=last.get("ts_ms"),
        last_granted=last.get("granted"),
        last_reason=last.get("reason"),
        denied_reasons=dict(s["reasons"]),
    )
