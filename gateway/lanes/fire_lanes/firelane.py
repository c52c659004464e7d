"""One fire lane's state machine: is a vehicle parked in it, for how long, and can we tell?

    ABSENT ─vehicle in lane─► CANDIDATE ─still for settle_s─► PARKED ─grace_s─► VIOLATION
       ▲                                                          │                  │
       └──────────────── lane seen empty for exit_delay_s ◄────────┴──────────────────┘
    any state ─camera offline / view blocked─► UNKNOWN ─view back─► the state it had

- The dwell clock starts when the vehicle *stopped* (the tracker's stillness), not when it was
  first seen; it counts only while the lane is watched (schedule) and not exempt (loading window).
- `fire_lane_blocked` is an alarm in the shared `AlarmBook` (one per episode, reminders, ack);
  `fire_lane_cleared` closes it with the real dwell (stop to last sighting, not + exit delay).
- Occlusion: the parked vehicle missing from a detection does not clear the lane. Clearing needs
  the lane *seen empty* for `exit_delay_s`; a person or another object covering the vehicle's last
  box does not count as seeing it empty.
- UNKNOWN is never "clear": blindness stops the empty-lane clock, and an open alarm stays open.
- State is saved at every transition, and the moving parts between transitions (the dwell clock
  paused by a loading window or the schedule, the occupant's last sighting) at most every
  `save_interval_s`; after a restart the saved vehicle is put back into the tracker with its stop
  time, and the first detections re-verify it (same box → same dwell).
- Late and sparse detections: every observation carries the time its frame was taken, not the time
  the inference finished, so a backed-up inference queue does not stretch stillness or dwell.
  Clearing needs the lane seen empty at least `EMPTY_LOOKS` times spanning `exit_delay_s`: two
  missed detections seconds apart on a CPU-starved gateway are not enough to end an episode (which
  would raise a second alarm when the still-parked car is seen again). While such a countdown runs
  the lane asks for looks (`wants_look`), so it clears on time at any detector cadence.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gateway.core import Event, Record
from gateway.lanes.alarms import AlarmBook
from gateway.lanes.fire_lanes.config import FireLaneConfig
from gateway.lanes.fire_lanes.detector import Detection
from gateway.lanes.fire_lanes.geometry import Box, bottom_strip_inside, iou, overlap_of, to_pixels
from gateway.lanes.fire_lanes.report import FireLaneState
from gateway.lanes.fire_lanes.tracker import Track

log = logging.getLogger("lintel.firelane")

ABSENT, CANDIDATE, PARKED, VIOLATION, UNKNOWN = "absent", "candidate", "parked", "violation", "unknown"
REVERIFY_IOU = 0.5  # a box this close to the saved one is the same parked vehicle
OCCLUDED = 0.3  # share of the parked box covered by something else: cannot tell it left
EMPTY_LOOKS = 3  # detections that must see the lane empty (over exit_delay_s) before it clears
# What walks or rolls in front of a parked car. Static things the detector sees in the background
# (a potted plant, a bench) must not count, or a lane beside them could never clear.
OCCLUDERS = frozenset(
    {"person", "bicycle", "motorbike", "motorcycle", "dog", "umbrella", "suitcase", "handbag"}
)


@dataclass(slots=True)
class Occupant:
    track_id: int
    label: str
    box: Box  # frame pixels
    parked_since_ms: int
    last_seen_ms: int


class LaneWatch:
    def __init__(
        self,
        config: FireLaneConfig,
        book: AlarmBook,
        tz: dt.tzinfo,
        saved: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.book = book
        self.tz = tz
        self.key = f"fire_lane:{config.id}"
        self.state = ABSENT
        self.before_unknown = ABSENT
        self.occupant: Occupant | None = None
        self.empty_since_ms: int | None = None
        self.empty_looks = 0
        self.cleared_ms: int | None = None
        self.unknown_since_ms: int | None = None
        self.unknown_reason: str | None = None
        self.dirty = False  # a transition: save now
        self.moved = False  # the dwell clock or the last sighting moved: save within save_interval_s
        self._polygon_px: tuple[int, int, np.ndarray] | None = None
        if saved:
            self.state = saved["state"]
            self.before_unknown = saved.get("before_unknown", ABSENT)
            self.occupant = Occupant(**saved["occupant"]) if saved.get("occupant") else None
            self.unknown_since_ms = saved.get("unknown_since_ms")
            self.unknown_reason = saved.get("unknown_reason")
        if self.state == VIOLATION and not book.is_open(self.key):
            self.state = PARKED  # alarm acknowledged and closed elsewhere: raise again if still there

    # -- inputs -----------------------------------------------------------------------------
    def polygon(self, width: int, height: int) -> np.ndarray:
        if self._polygon_px is None or self._polygon_px[:2] != (width, height):
            self._polygon_px = (width, height, to_pixels(self.config.polygon, width, height))
        return self._polygon_px[2]

    def in_lane(self, track: Track, width: int, height: int) -> bool:
        cfg = self.config
        x1, y1, x2, y2 = track.box
        if track.label not in cfg.classes or track.score < cfg.min_score:
            return False
        if (x2 - x1) * (y2 - y1) < cfg.min_area * width * height:
            return False
        return bottom_strip_inside(track.box, self.polygon(width, height)) >= cfg.overlap

    def observe(
        self,
        now_ms: int,
        size: tuple[int, int],
        seen: list[Track],
        others: list[Detection],
        evidence: Callable[[Occupant], str | None],
    ) -> list[Record]:
        """One detection result for this lane's camera (frame size `(width, height)`)."""
        out: list[Record] = []
        width, height = size
        if self.state == UNKNOWN:
            out += self._regain_sight(now_ms)
        inside = [t for t in seen if self.in_lane(t, width, height)]
        occ = self.occupant
        if occ is not None:
            # the same track, or a box where it stood: the same box again, or a larger one
            # around it (the whole car again after a passer-by hid half of it)
            match = next((t for t in inside if t.track_id == occ.track_id), None) or next(
                (
                    t
                    for t in inside
                    if iou(t.box, occ.box) >= REVERIFY_IOU or overlap_of(occ.box, t.box) >= 0.8
                ),
                None,
            )
            if match is not None:
                if match.track_id != occ.track_id:
                    log.info(
                        "lane %s: vehicle %d re-identified as track %d",
                        self.config.id,
                        occ.track_id,
                        match.track_id,
                    )
                occ.track_id, occ.box = match.track_id, match.box
                occ.last_seen_ms, self.moved = max(occ.last_seen_ms, now_ms), True
                self._stop_countdown()
            elif any(overlap_of(occ.box, o.box) >= OCCLUDED for o in others if o.label in OCCLUDERS) or any(
                overlap_of(occ.box, t.box) >= OCCLUDED for t in seen
            ):
                self._stop_countdown()  # something stands in front of it: not evidence of absence
            else:
                if self.empty_since_ms is None:
                    self.empty_since_ms = now_ms
                self.empty_looks += 1
                if (
                    now_ms - self.empty_since_ms >= self.config.exit_delay_s * 1000
                    and self.empty_looks >= EMPTY_LOOKS
                ):
                    out += self._clear(now_ms)
        if self.occupant is None:
            still = [t for t in inside if t.still_for_s(now_ms) >= self.config.settle_s]
            if still:
                first = min(still, key=lambda t: t.still_since_ms)
                # a new episode's dwell cannot start before the last one ended (a car the detector
                # lost for exit_delay_s and finds again is not overdue at once: no second alarm)
                since = max(first.still_since_ms, self.cleared_ms or 0)
                self.occupant = Occupant(first.track_id, first.label, first.box, since, now_ms)
                self._set(PARKED)
                log.info("lane %s: %s (track %d) parked", self.config.id, first.label, first.track_id)
            else:
                self._set(CANDIDATE if inside else ABSENT)
        out += self.tick(now_ms, evidence)
        return out

    def wants_look(self, now_ms: int) -> bool:
        """True while the lane is counting down to clearing: each look can confirm or cancel it."""
        return self.empty_since_ms is not None

    def _stop_countdown(self) -> None:
        self.empty_since_ms = None
        self.empty_looks = 0

    def blind(self, now_ms: int, reason: str) -> list[Record]:
        """The camera is offline or its view is blocked: UNKNOWN, never clear."""
        self._stop_countdown()
        if self.state == UNKNOWN:
            return []
        self.before_unknown = self.state
        self.unknown_since_ms = now_ms
        self.unknown_reason = reason
        self._set(UNKNOWN)
        log.warning("lane %s: UNKNOWN (%s)", self.config.id, reason)
        attrs: dict[str, Any] = {"camera": self.config.camera, "reason": reason, "was": self.before_unknown}
        if self.book.is_open(self.key):
            attrs["alarm_open"] = True
        return [Event(self.config.id, "fire_lane_unknown", now_ms, attrs, "warning")]

    def tick(self, now_ms: int, evidence: Callable[[Occupant], str | None]) -> list[Record]:
        """Time-based steps: the grace period running out; the schedule pausing the dwell clock."""
        occ = self.occupant
        if occ is None or self.state not in (PARKED, UNKNOWN):
            return []
        if not self.watching(now_ms):
            if now_ms > occ.parked_since_ms:
                occ.parked_since_ms, self.moved = now_ms, True  # dwell counts only while watched
            return []
        if self.state == UNKNOWN:
            return []  # cannot confirm the vehicle is there: no new alarm while blind
        dwell_s = (now_ms - occ.parked_since_ms) / 1000
        if dwell_s < self.config.grace_s:
            return []
        self._set(VIOLATION)
        evidence_id = evidence(occ)
        log.warning(
            "lane %s: blocked by %s (track %d) for %.0f s", self.config.id, occ.label, occ.track_id, dwell_s
        )
        return list(
            self.book.open(
                self.key,
                "fire_lane_blocked",
                self.config.id,
                now_ms,
                {
                    "lane": self.config.id,
                    "camera": self.config.camera,
                    "track_id": occ.track_id,
                    "label": occ.label,
                    "dwell_s": round(dwell_s),
                    "parked_since_ms": occ.parked_since_ms,
                    "evidence_id": evidence_id,
                },
                resolved_kind="fire_lane_cleared",
                renotify_s=self.config.renotify_min * 60,
            )
        )

    def watching(self, now_ms: int) -> bool:
        local = dt.datetime.fromtimestamp(now_ms / 1000, self.tz)
        if self.config.active and not any(w.contains(local) for w in self.config.active):
            return False
        return not any(w.contains(local) for w in self.config.exempt)

    # -- transitions ------------------------------------------------------------------------
    def _regain_sight(self, now_ms: int) -> list[Record]:
        unknown_s = round((now_ms - (self.unknown_since_ms or now_ms)) / 1000)
        self._set(self.before_unknown)
        if self.state == VIOLATION and not self.book.is_open(self.key):
            self._set(PARKED)
        self.unknown_since_ms = None
        log.info("lane %s: view regained after %d s (%s)", self.config.id, unknown_s, self.state)
        return [
            Event(
                self.config.id,
                "fire_lane_visible",
                now_ms,
                {"camera": self.config.camera, "unknown_s": unknown_s, "state": self.state},
            )
        ]

    def _clear(self, now_ms: int) -> list[Record]:
        occ = self.occupant
        assert occ is not None
        self.occupant = None
        self._stop_countdown()
        self.cleared_ms = now_ms
        was = self.state
        self._set(ABSENT)
        if was != VIOLATION:
            log.info("lane %s: vehicle %d left within the grace period", self.config.id, occ.track_id)
            return []
        dwell_s = round((occ.last_seen_ms - occ.parked_since_ms) / 1000)
        log.info("lane %s: cleared after %d s", self.config.id, dwell_s)
        return list(
            self.book.close(
                self.key,
                now_ms,
                {
                    "lane": self.config.id,
                    "track_id": occ.track_id,
                    "dwell_s": dwell_s,
                    "left_ms": occ.last_seen_ms,
                },
            )
        )

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.dirty = True

    # -- persistence and status -------------------------------------------------------------
    def saved(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "before_unknown": self.before_unknown,
            "occupant": asdict(self.occupant) if self.occupant else None,
            "unknown_since_ms": self.unknown_since_ms,
            "unknown_reason": self.unknown_reason,
        }

    def restored_track(self) -> Track | None:
        """The saved parked vehicle as a tracker track, so the same identity continues."""
        occ = self.occupant
        if occ is None:
            return None
        return Track(
            occ.track_id,
            occ.label,
            1.0,
            occ.box,
            occ.last_seen_ms,
            occ.box,
            occ.parked_since_ms,
        )

    def report(self, now_ms: int) -> FireLaneState:
        occ = self.occupant
        return FireLaneState(
            self.config.id,
            self.config.camera,
            self.state,
            self.book.is_open(self.key),
            round((now_ms - occ.parked_since_ms) / 1000) if occ is not None else None,
            self.unknown_reason if self.state == UNKNOWN else None,
        )
