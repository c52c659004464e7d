"""The second factor of a `require = "face+tag"` entrance: was the recognised resident's own tag
heard at this door, authenticated and fresh, within `tag_window_s` before the decision?

Asked after the face matched and passed liveness. What the entrance's BLE source reported of the
resident's tag since `now - tag_window_s` (`gateway.core.tags.TagHub`) decides:
- one `fresh` advert (the tag's key authenticated it and its counter moved on) → the factor holds;
- otherwise the refusal names the most telling thing heard, in this order: `tag_replayed` (a
  recording of the tag played back), `tag_plaintext` (someone sent a readable advert from the
  tag's address: spoofable by anyone), `tag_wrong_key` (encrypted with another key), `tag_malformed`;
  then `tag_of_another_resident` (no advert of theirs, but another resident's tag was heard fresh:
  a borrowed fob), else `tag_not_heard`; `no_tag_enrolled` when the resident has no tag at all.
The events carry the reason and the pseudonym only: never the tag's address or key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.core.tags import TagHub
from gateway.lanes.faces.tag_store import ResidentTag

REFUSALS = (
    ("replayed", "tag_replayed"),
    ("plaintext", "tag_plaintext"),
    ("wrong_key", "tag_wrong_key"),
    ("malformed", "tag_malformed"),
)
REASONS = (
    "no_tag_enrolled",
    "tag_not_heard",
    *(reason for _, reason in REFUSALS),
    "tag_of_another_resident",
)


@dataclass(frozen=True, slots=True)
class TagCheck:
    hub: TagHub
    source_id: str  # the entrance's tag_source: a tag heard by another adapter is not at this door
    window_s: float
    monotonic: Callable[[], float]  # the clock the BLE sources stamp their sightings with
    tags: Callable[[], Mapping[str, ResidentTag]]  # every resident's tag, by resident id

    def __call__(self, resident_id: str) -> str | None:
        """None when the resident's tag was here; the refusal reason otherwise."""
        tags = self.tags()
        tag = tags.get(resident_id)
        if tag is None:
            return "no_tag_enrolled"
        since = self.monotonic() - self.window_s
        heard = {s.verdict for s in self.hub.sightings(tag.address, self.source_id, since)}
        if "fresh" in heard:
            return None
        for verdict, reason in REFUSALS:
            if verdict in heard:
                return reason
        for other in tags.values():  # one lookup per tag: a refusal stays cheap with 1,000 residents
            at = self.hub.last_fresh(other.address, self.source_id)
            if other.resident_id != resident_id and at is not None and at >= since:
                return "tag_of_another_resident"
        return "tag_not_heard"
