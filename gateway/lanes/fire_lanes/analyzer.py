"""Per-camera analytics: when to run the detector, and feeding its results to the lanes.

`step(frame, online, now_ms)` is called a few times a second with the camera's latest frame.
It decides, cheaply, whether the picture can be trusted (camera online, view not blocked or black)
and whether the detector should run now:

- **motion gating**: a 160-pixel-wide grey copy of the frame is compared with the previous one
  inside the lanes only; when more than `motion_threshold` of the lane's pixels changed, the
  detector runs every `motion_interval_s`, otherwise only every `forced_interval_s`. An idle
  camera therefore costs a resize and a subtraction per step, and a detection every few seconds.

- **confirming**: while a lane counts down to clearing, the detector runs every
  `motion_interval_s`, so the lane is seen empty often enough to clear on time.

`apply(frame, detections, now_ms)` runs the tracker and every lane of this camera with `now_ms` the
time the frame was *taken* (a result that arrives late still describes that moment; one older than
the last applied is dropped); `tick(now_ms)` runs the lanes' timers. All three are synchronous and
take time from their arguments, so tests can drive them with scene time, delays included.
Lane state is saved at every transition, and between transitions at most every `save_interval_s`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import cv2
import numpy as np

from gateway.core import Record
from gateway.core.frames import Frame
from gateway.inference.boxes import nms
from gateway.inference.evidence import EvidenceStore
from gateway.lanes.fire_lanes.annotate import draw, jpeg
from gateway.lanes.fire_lanes.detector import Detection
from gateway.lanes.fire_lanes.firelane import UNKNOWN, LaneWatch, Occupant
from gateway.lanes.fire_lanes.geometry import to_pixels
from gateway.lanes.fire_lanes.tracker import IouTracker

log = logging.getLogger("lintel.vision")

MOTION_WIDTH = 160
PIXEL_CHANGE = 25  # grey levels: above sensor noise, below a car's edge
BLOCKED_STD = 6.0  # a covered lens or a black picture is this flat


def grey(image: np.ndarray) -> np.ndarray:
    """One channel: an IR camera's single-channel frame as it is, a colour frame converted."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


class MotionGate:
    def __init__(self) -> None:
        self.previous: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        self.last_score = 0.0

    def score(self, image: np.ndarray, polygons: list[list[list[float]]]) -> float:
        """Share of lane pixels that changed since the previous call (1.0 on the first call)."""
        h, w = image.shape[:2]
        small_h = max(1, round(h * MOTION_WIDTH / w))
        small = grey(cv2.resize(image, (MOTION_WIDTH, small_h), interpolation=cv2.INTER_AREA))
        small = cv2.GaussianBlur(small, (5, 5), 0)
        if self.mask is None or self.mask.shape != small.shape:
            self.mask = np.zeros(small.shape, dtype=np.uint8)
            for poly in polygons:
                cv2.fillPoly(self.mask, [to_pixels(poly, MOTION_WIDTH, small_h).round().astype(np.int32)], 1)
            self.previous = None
        previous, self.previous = self.previous, small
        if previous is None:
            self.last_score = 1.0
            return 1.0
        changed = (cv2.absdiff(small, previous) > PIXEL_CHANGE) & (self.mask > 0)
        self.last_score = float(changed.sum()) / max(1, int(self.mask.sum()))
        return self.last_score


def merge_vehicles(vehicles: list[Detection], same_iou: float = 0.5) -> list[Detection]:
    """One box per vehicle: the detector may call the same pickup both `car` and `truck`."""
    if not vehicles:
        return []
    boxes = np.array([d.box for d in vehicles], dtype=np.float64)
    scores = np.array([d.score for d in vehicles], dtype=np.float64)
    return [vehicles[i] for i in nms(boxes, scores, same_iou)]


def view_problem(image: np.ndarray) -> str | None:
    """Why the picture cannot be trusted, or None. Flat pictures are covered or black."""
    small = cv2.resize(image, (64, 36), interpolation=cv2.INTER_AREA)
    mono = grey(small)
    if float(mono.std()) < BLOCKED_STD:
        return "view blocked or too dark" if float(mono.mean()) < 40 else "view blocked (uniform picture)"
    return None


class CameraAnalyzer:
    def __init__(
        self,
        camera_id: str,
        lanes: list[LaneWatch],
        evidence: EvidenceStore | None,
        on_save: Callable[[LaneWatch], None] = lambda lane: None,
    ) -> None:
        self.camera_id = camera_id
        self.lanes = lanes
        self.evidence = evidence
        self.on_save = on_save
        self.vehicle_labels = frozenset(label for lane in lanes for label in lane.config.classes)
        self.min_score = min(lane.config.min_score for lane in lanes)
        self.forced_ms = min(lane.config.forced_interval_s for lane in lanes) * 1000
        self.motion_ms = min(lane.config.motion_interval_s for lane in lanes) * 1000
        self.motion_threshold = min(lane.config.motion_threshold for lane in lanes)
        exit_delay = max(lane.config.exit_delay_s for lane in lanes)
        self.tracker = IouTracker(max_missing_s=exit_delay * 2 + self.forced_ms / 1000)
        for lane in lanes:
            track = lane.restored_track()
            if track is not None:
                self.tracker.restore(track)
        self.motion = MotionGate()
        self.last_detect_ms: int | None = None
        self.last_seq = -1
        self.last_frame: Frame | None = None
        self.last_detections: list[Detection] = []
        self.last_applied_ms: int | None = None
        self.saved_ms: dict[str, int] = {}
        self.runs = {"forced": 0, "motion": 0, "settled": 0, "confirm": 0}
        self.was_moving = False

    def step(self, frame: Frame | None, online: bool, now_ms: int) -> tuple[list[Record], bool]:
        """(records, run the detector on this frame now?)."""
        if not online or frame is None:
            return self._blind(now_ms, "camera offline"), False
        if frame.seq == self.last_seq:
            return [], False
        self.last_seq = frame.seq
        problem = view_problem(frame.image)
        if problem is not None:
            return self._blind(now_ms, problem), False
        self.last_frame = frame
        polygons = [lane.config.polygon for lane in self.lanes]
        moving = self.motion.score(frame.image, polygons) >= self.motion_threshold
        settled, self.was_moving = self.was_moving and not moving, moving
        since = None if self.last_detect_ms is None else now_ms - self.last_detect_ms
        blind = any(lane.state == UNKNOWN for lane in self.lanes)
        if since is None or since >= self.forced_ms or blind:
            self.runs["forced"] += 1
            return [], True
        if moving and since >= self.motion_ms:
            self.runs["motion"] += 1
            return [], True
        if since >= self.motion_ms and any(lane.wants_look(now_ms) for lane in self.lanes):
            self.runs["confirm"] += 1
            return [], True
        if settled:
            # The lane just stopped moving: look now, so a car's stop time is known to within a
            # step rather than to within the slow forced cadence.
            self.runs["settled"] += 1
            return [], True
        return [], False

    def apply(self, frame: Frame, detections: list[Detection], now_ms: int) -> list[Record]:
        """Feed one detection result (of a frame taken at `now_ms`) to the tracker and the lanes."""
        if self.last_applied_ms is not None and now_ms < self.last_applied_ms:
            return []  # an older frame's result after a newer one: the lanes already know better
        self.last_applied_ms = now_ms
        self.last_detect_ms = now_ms
        self.last_frame = frame
        self.last_detections = detections
        vehicles = merge_vehicles(
            [d for d in detections if d.label in self.vehicle_labels and d.score >= self.min_score]
        )
        others = [d for d in detections if d.label not in self.vehicle_labels]
        seen = self.tracker.update(vehicles, now_ms)
        size = (frame.image.shape[1], frame.image.shape[0])
        out: list[Record] = []
        for lane in self.lanes:
            out += lane.observe(now_ms, size, seen, others, self._evidence_for(lane))
            self._save_if_dirty(lane, now_ms)
        return out

    def tick(self, now_ms: int) -> list[Record]:
        out: list[Record] = []
        for lane in self.lanes:
            out += lane.tick(now_ms, self._evidence_for(lane))
            self._save_if_dirty(lane, now_ms)
        return out

    def _blind(self, now_ms: int, reason: str) -> list[Record]:
        out: list[Record] = []
        for lane in self.lanes:
            out += lane.blind(now_ms, reason)
            self._save_if_dirty(lane, now_ms)
        return out

    def _save_if_dirty(self, lane: LaneWatch, now_ms: int) -> None:
        """Transitions at once; a moved dwell clock or last sighting at most every save_interval_s."""
        last = self.saved_ms.get(lane.config.id)
        due = lane.moved and (last is None or now_ms - last >= lane.config.save_interval_s * 1000)
        if lane.dirty or due:
            lane.dirty = lane.moved = False
            self.saved_ms[lane.config.id] = now_ms
            self.on_save(lane)

    def flush(self) -> None:
        """Save what moved since the last save (at shutdown)."""
        for lane in self.lanes:
            if lane.dirty or lane.moved:
                lane.dirty = lane.moved = False
                self.on_save(lane)

    def _evidence_for(self, lane: LaneWatch) -> Callable[[Occupant], str | None]:
        def save(occupant: Occupant) -> str | None:
            if self.evidence is None or self.last_frame is None:
                return None
            picture = self.annotated(
                [Detection(occupant.label, 1.0, occupant.box)], f"{lane.config.id}: parked"
            )
            try:
                return self.evidence.save(lane.config.id, jpeg(picture), self.last_frame.ts_ms)
            except OSError as exc:
                log.error("lane %s: cannot save evidence: %s", lane.config.id, exc)
                return None

        return save

    def annotated(self, detections: list[Detection] | None = None, caption: str | None = None) -> np.ndarray:
        assert self.last_frame is not None
        return draw(
            self.last_frame.image,
            [(lane.config.id, lane.config.polygon, lane.state) for lane in self.lanes],
            self.last_detections if detections is None else detections,
            caption,
        )
