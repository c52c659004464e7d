"""The decision rule of one entrance: k of n frames, threshold, margin, permissions, limits.

Each usable frame is an observation labelled with a resident (distance ≤ threshold and the
second-closest resident at least `min_margin` farther), `?` (close to someone but ambiguous) or
unknown. A decision is taken when k of the last n observations agree. With `match` set (the
default `[faces] decide_on = "approach"`), who it is comes from the approach, not the frames: the
descriptors of the window's frames are fused (`fusion.py`: mean of unit descriptors, outliers
left out) and that one descriptor is matched and labelled; the per-frame labels only say when to
decide (and fall back when the window holds no single face). Then:
- a resident → liveness → second factor (face+tag entrances: `second_factor.py`) → allowed door
  → time window → anti-passback → GRANT;
- unknown or ambiguous → DENY.
The window is then emptied; the same resident gets no new decision for `cooldown_s` (the door is
open, they are walking through), and the same unknown face (its descriptor within the threshold
of one just denied) is not reported again for `cooldown_s` — while a different stranger is.
A face missing for `RESET_S` empties the window, so two people never add up to one decision.

A resident's decision comes in two halves (issue 26: the check costs as much CPU as a frame):
`step` returns a `Pending` with what liveness judges; its `check()` runs on the inference thread
(no loop state); `finish` completes the decision on the caller's thread with the result (second
factor, doors, hours, anti-passback). A different face seen in between, or the face gone for
`RESET_S`, refuses it (`face_changed`): the check judged someone who is no longer there.
`observe` does both halves at once (tests, benches, the CLI).
Denials are rate limited: more than `max_attempts_per_minute` locks face decisions out for
`lockout_s` (someone trying photo after photo); the card/PIN reader is unaffected.

Pure logic on the caller's clock: the lane's tests drive it in scene time.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gateway.core.windows import Window
from gateway.lanes.faces.config import FaceAccessConfig, FacesSection
from gateway.lanes.faces.fusion import fuse, unit
from gateway.lanes.faces.liveness import LiveFrame, LivenessCheck, LivenessResult
from gateway.lanes.faces.match import Match
from gateway.lanes.faces.outcome import Decision, Observation, Pending

RESET_S = 2.0
UNKNOWN = ""
AMBIGUOUS = "?"


def classify(match: Match, threshold: float, min_margin: float) -> str:
    """The label of one match: the resident's id, AMBIGUOUS (close, but another resident is
    nearly as close) or UNKNOWN. The door and `lintel faces verify` judge a face by this alone."""
    if match.resident is None or match.distance > threshold:
        return UNKNOWN
    if match.margin < min_margin:
        return AMBIGUOUS
    return match.resident.id


@dataclass(slots=True)
class Passage:
    direction: str
    ts_ms: int


@dataclass
class Decider:
    entrance: FaceAccessConfig
    faces: FacesSection
    threshold: float
    liveness: LivenessCheck
    zone: dt.tzinfo
    passages: dict[str, Passage]  # shared by the entrances of a gateway (anti-passback)
    # face+tag: resident id → None (their tag was heard) or why not (second_factor.TagCheck)
    second_factor: Callable[[str], str | None] | None = None
    # approach-level fusion: the gallery's matcher for a fused descriptor (None: per-frame rule)
    match: Callable[[np.ndarray], Match] | None = None
    window: deque[Observation] = field(init=False)
    # (label, what liveness sees) of the last usable frames: liveness judges one face over the
    # frames labelled as that face (never across two people)
    recent: deque[tuple[str, LiveFrame]] = field(init=False)
    cooldown_until: dict[str, int] = field(default_factory=dict)
    denials: deque[int] = field(default_factory=deque)
    strangers: list[tuple[np.ndarray, int]] = field(default_factory=list)  # (descriptor, until_ms)
    locked_until_ms: int = 0
    last_face_ms: int = 0
    suppressed: int = 0
    pending: Pending | None = None  # between `step` and `finish`

    def __post_init__(self) -> None:
        self.window = deque(maxlen=self.faces.n)
        self.recent = deque(maxlen=2 * max(self.faces.n, self.liveness.frames))

    def label(self, match: Match) -> str:
        return classify(match, self.threshold, self.faces.min_margin)

    def locked(self, now_ms: int) -> bool:
        return now_ms < self.locked_until_ms

    def no_face(self, ts_ms: int) -> None:
        """A frame without a face, captured at `ts_ms` (the frames' capture clock, as
        `Observation.ts_ms`: never the time it was analysed, which lags under load)."""
        if ts_ms - self.last_face_ms > RESET_S * 1000:
            self.window.clear()
            self.recent.clear()
            if self.pending is not None:
                self.pending.changed = True  # the face left while its check ran

    def observe(self, obs: Observation, now_ms: int) -> tuple[Decision | None, bool]:
        """Add a usable frame. Returns (decision or None, whether a lockout started now): both
        halves at once, the liveness check on this thread."""
        got, locked = self.step(obs, now_ms)
        if isinstance(got, Pending):
            return self.finish(got, got.check(), now_ms)
        return got, locked

    def step(self, obs: Observation, now_ms: int) -> tuple[Decision | Pending | None, bool]:
        """Add a usable frame. Returns (a decision, a resident's `Pending` decision, or None;
        whether a lockout started now). A `Pending` must be `finish`ed with its check's result."""
        self.no_face(obs.ts_ms)
        self.last_face_ms = obs.ts_ms
        if self.pending is not None and self._another_face(obs, self.pending):
            self.pending.changed = True
        if obs.chip is not None:
            live = LiveFrame(obs.chip, obs.vector, obs.landmarks, obs.pad, obs.context, obs.pad_crops)
            self.recent.append((obs.label, live))
        if self.locked(now_ms):
            self.suppressed += 1
            return None, False
        if obs.label == UNKNOWN:
            if self._same_stranger(obs, now_ms):
                return None, False
        elif self.cooldown_until.get(obs.label, 0) > now_ms:
            return None, False
        self.window.append(obs)
        label, count = Counter(o.label for o in self.window).most_common(1)[0]
        if count < self.faces.k:
            return None, False
        agreeing = [o for o in self.window if o.label == label]
        fused = self._fused()
        match, vector = None, None
        if fused is not None:
            label, agreeing, match, vector = fused  # the approach's identity decides
            if label not in (UNKNOWN, AMBIGUOUS) and self.cooldown_until.get(label, 0) > now_ms:
                self.window.clear()  # decided moments ago (their frames labelled unknown one by one)
                return None, False
            frames = self._approach_frames(vector)
        else:
            frames = self._frames(label)
        if label not in (UNKNOWN, AMBIGUOUS) and len(frames) < self.liveness.frames:
            return None, False  # a resident: wait until liveness has the frames it judges
        self.window.clear()
        until = now_ms + int(self.entrance.cooldown_s * 1000)
        if label == UNKNOWN:
            self.strangers += [(o.vector, until) for o in agreeing if o.vector is not None]
        else:
            self.cooldown_until[label] = until
        if label not in (UNKNOWN, AMBIGUOUS):
            best = min(agreeing, key=lambda o: o.match.distance)
            decided = vector if vector is not None else best.vector
            self.pending = Pending(label, agreeing, match, frames, decided, self.liveness)
            return self.pending, False
        return self._counted(self._decide(label, agreeing, now_ms, match), now_ms)

    def finish(self, pending: Pending, live: LivenessResult, now_ms: int) -> tuple[Decision, bool]:
        """The second half of a resident's decision: `live` is `pending.check()`'s result.
        Refused (`face_changed`, not counted toward the lockout, no cooldown: the resident may be
        decided again at once) when another face was seen or the face left in between."""
        if self.pending is pending:
            self.pending = None
        if pending.changed:
            self.cooldown_until.pop(pending.label, None)
        decision = self._decide(pending.label, pending.agreeing, now_ms, pending.match, live, pending.changed)
        return (decision, False) if pending.changed else self._counted(decision, now_ms)

    def _counted(self, decision: Decision, now_ms: int) -> tuple[Decision, bool]:
        return decision, (not decision.granted and self._count_denial(now_ms))

    def _another_face(self, obs: Observation, pending: Pending) -> bool:
        """Whether a frame shows someone else than the pending decision's face: another label,
        unless its descriptor is within the threshold of the one decided (fusion's frames are
        often labelled unknown one by one)."""
        if obs.label == pending.label:
            return False
        if obs.vector is None or pending.vector is None:
            return True
        gap = unit(np.asarray(obs.vector, np.float32)) - unit(np.asarray(pending.vector, np.float32))
        return float(np.linalg.norm(gap)) > self.threshold

    def _frames(self, label: str) -> list[LiveFrame]:
        return [frame for lab, frame in self.recent if lab == label]

    def _fused(self) -> tuple[str, list[Observation], Match, np.ndarray] | None:
        """(label, frames used, match, descriptor) of the window's fused descriptor; None without
        a matcher or when the window holds no single face (`fusion.fuse`)."""
        if self.match is None:
            return None
        frames = [o for o in self.window if o.vector is not None]
        got = fuse([o.vector for o in frames if o.vector is not None], self.threshold, self.faces.k)
        if got is None:
            return None
        vector, used = got
        match = self.match(vector)
        return self.label(match), [frames[i] for i in used], match, vector

    def _approach_frames(self, vector: np.ndarray) -> list[LiveFrame]:
        """What liveness judges for a fused decision: the recent frames of this face (within the
        threshold of the fused descriptor), whatever each was labelled alone."""
        return [
            frame
            for _, frame in self.recent
            if frame.vector is not None
            and float(np.linalg.norm(unit(np.asarray(frame.vector, np.float32)) - vector)) <= self.threshold
        ]

    def _same_stranger(self, obs: Observation, now_ms: int) -> bool:
        """True for an unknown face just denied (within the threshold of its descriptors)."""
        self.strangers = [(v, until) for v, until in self.strangers if until > now_ms]
        if obs.vector is None:
            return False
        return any(float(np.linalg.norm(v - obs.vector)) <= self.threshold for v, _ in self.strangers)

    def _decide(
        self,
        label: str,
        agreeing: list[Observation],
        now_ms: int,
        fused: Match | None = None,
        live: LivenessResult | None = None,
        changed: bool = False,
    ) -> Decision:
        """`fused`: the approach's match (else the closest agreeing frame's); `live`: the
        liveness check's result (a resident's decision); `changed`: `Pending.changed`."""
        best = min(agreeing, key=lambda o: o.match.distance)
        match = fused or best.match
        latency = now_ms - agreeing[0].ts_ms

        def decision(granted: bool, reason: str, liveness: str = "not_checked") -> Decision:
            resident = match.resident if label != UNKNOWN else None  # ambiguous: the closest
            chip = best.chip if label == UNKNOWN else None
            return Decision(
                granted, reason, resident, match.distance, match.margin, latency,
                len(agreeing), liveness, self.liveness.name, chip,
            )  # fmt: skip

        if label == UNKNOWN:
            return decision(False, "unknown_face")
        if label == AMBIGUOUS:
            return decision(False, "ambiguous")
        assert live is not None  # a resident's decision is finished with its check's result
        live_label = "off" if self.liveness.name == "off" else ("passed" if live.passed else "failed")
        if changed:
            return decision(False, "face_changed", live_label)
        if not live.passed:
            refused = decision(False, "liveness_failed", live_label)
            refused.liveness_detail = live.detail
            return refused
        resident = match.resident
        assert resident is not None
        if self.second_factor is not None and (missing := self.second_factor(resident.id)) is not None:
            return decision(False, missing, live_label)
        if resident.doors and self.entrance.door not in resident.doors:
            return decision(False, "door_not_allowed", live_label)
        if resident.windows:
            local = dt.datetime.fromtimestamp(now_ms / 1000, self.zone)
            if not any(Window.model_validate(w).contains(local) for w in resident.windows):
                return decision(False, "outside_hours", live_label)
        if self.entrance.anti_passback_s > 0 and self.entrance.direction != "both":
            last = self.passages.get(resident.id)
            window_ms = self.entrance.anti_passback_s * 1000
            if last and last.direction == self.entrance.direction and now_ms - last.ts_ms < window_ms:
                return decision(False, "anti_passback", live_label)
        self.passages[resident.id] = Passage(self.entrance.direction, now_ms)
        return decision(True, "match", live_label)

    def _count_denial(self, now_ms: int) -> bool:
        self.denials.append(now_ms)
        while self.denials and now_ms - self.denials[0] > 60_000:
            self.denials.popleft()
        if len(self.denials) > self.entrance.max_attempts_per_minute:
            self.locked_until_ms = now_ms + int(self.entrance.lockout_s * 1000)
            self.denials.clear()
            self.window.clear()
            return True
        return False
