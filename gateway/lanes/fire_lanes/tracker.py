"""A cheap IoU tracker: a parked car keeps one identity across detections.

Greedy matching of detections to live tracks by IoU (best pairs first). A track that is not
matched stays alive for `max_missing_s` (a pedestrian in front, a missed detection) and keeps its
last box. Stillness is measured against an *anchor* box: while the box stays within `still_iou`
of the anchor the vehicle is still, and `still_since_ms` is when it stopped; a larger move resets
the anchor. This needs no motion model and no appearance features, which a Pi cannot afford.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.lanes.fire_lanes.detector import Detection
from gateway.lanes.fire_lanes.geometry import Box, iou


@dataclass(slots=True)
class Track:
    track_id: int
    label: str
    score: float
    box: Box
    last_ms: int
    anchor: Box
    still_since_ms: int

    def still_for_s(self, now_ms: int) -> float:
        return (now_ms - self.still_since_ms) / 1000


class IouTracker:
    def __init__(self, match_iou: float = 0.3, still_iou: float = 0.85, max_missing_s: float = 30) -> None:
        self.match_iou = match_iou
        self.still_iou = still_iou
        self.max_missing_s = max_missing_s
        self.tracks: dict[int, Track] = {}
        self.next_id = 1

    def update(self, detections: list[Detection], now_ms: int) -> list[Track]:
        """Match this frame's detections; returns the tracks seen in this frame."""
        pairs = sorted(
            (
                (iou(t.box, d.box), tid, di)
                for tid, t in self.tracks.items()
                for di, d in enumerate(detections)
            ),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        seen: list[Track] = []
        for overlap, tid, di in pairs:
            if overlap < self.match_iou:
                break
            if tid in used_tracks or di in used_dets:
                continue
            used_tracks.add(tid)
            used_dets.add(di)
            track, det = self.tracks[tid], detections[di]
            track.box, track.score, track.last_ms = det.box, det.score, now_ms
            if iou(track.anchor, det.box) < self.still_iou:
                track.anchor, track.still_since_ms = det.box, now_ms
            seen.append(track)
        for di, det in enumerate(detections):
            if di in used_dets:
                continue
            track = Track(self.next_id, det.label, det.score, det.box, now_ms, det.box, now_ms)
            self.next_id += 1
            self.tracks[track.track_id] = track
            seen.append(track)
        horizon = now_ms - self.max_missing_s * 1000
        self.tracks = {tid: t for tid, t in self.tracks.items() if t.last_ms >= horizon}
        return seen

    def restore(self, track: Track) -> None:
        """Put back a track saved before a restart (the parked car being re-verified)."""
        self.tracks[track.track_id] = track
        self.next_id = max(self.next_id, track.track_id + 1)
