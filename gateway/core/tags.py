"""Tags: how a BLE source tells the face lane that a resident's fob was heard, without knowing it.

A door with `require = "face+tag"` opens only if the face matches AND that resident's BLE tag (an
encrypted BTHome fob or button) sent an authenticated advert moments before. The tags and their
bindkeys are personal data: they live encrypted in the face gallery, so the lane, not the config,
knows them. The `TagHub` is where the two meet, filled by the runtime like the `FrameHub`:

- the face lane says which addresses to listen for and with which key (`watch`, replaced as a
  whole whenever the gallery changes; keys live only in memory);
- each running BLE source that is a `TagListener` is handed the hub; it authenticates the adverts
  of watched addresses with its own decoders and replay guard and reports a `TagSighting` per
  advert (`heard`): fresh, or why not (plaintext, replayed, wrong key, malformed);
- the lane asks which sightings of an address a given source reported since a moment
  (`sightings`), and decides.

Times are the receiving source's monotonic seconds (the clock the lane compares them with).
Bounded: the last `KEEP` sightings per address, only for watched addresses.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Verdict = Literal["fresh", "plaintext", "replayed", "wrong_key", "malformed"]
KEEP = 32


@dataclass(frozen=True, slots=True)
class TagSighting:
    """One advert of a watched tag, as a BLE source judged it."""

    source_id: str  # the BLE source (adapter) that heard it
    address: str  # upper-case, as in the config (E4:AA:EC:81:21:AE)
    verdict: Verdict  # fresh: authenticated by the key and above every counter seen before
    at: float  # receiver's monotonic seconds


class TagHub:
    """Watched tags (address → bindkey) and what was heard of them. Event-loop only."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._heard: dict[str, deque[TagSighting]] = {}
        self._fresh: dict[tuple[str, str], float] = {}  # (source, address) → last fresh advert
        self.generation = 0  # changes with every `watch`: listeners rebuild their guards

    def watch(self, tags: Mapping[str, bytes]) -> None:
        """Listen for exactly these tags from now on (address → 16-byte bindkey)."""
        keys = {address.upper(): bytes(key) for address, key in tags.items()}
        if keys == self._keys:
            return
        self._keys = keys
        self._heard = {a: s for a, s in self._heard.items() if a in keys}
        self._fresh = {k: at for k, at in self._fresh.items() if k[1] in keys}
        self.generation += 1

    def key(self, address: str) -> bytes | None:
        """The bindkey of a watched address (None: not watched)."""
        return self._keys.get(address)

    def watching(self, address: str) -> bool:
        return address in self._keys

    def heard(self, sighting: TagSighting) -> None:
        if sighting.address not in self._keys:
            return  # unwatched meanwhile: forget it
        self._heard.setdefault(sighting.address, deque(maxlen=KEEP)).append(sighting)
        if sighting.verdict == "fresh":
            where = (sighting.source_id, sighting.address)
            self._fresh[where] = max(sighting.at, self._fresh.get(where, sighting.at))

    def last_fresh(self, address: str, source_id: str) -> float | None:
        """When `source_id` last heard a fresh advert of `address` (None: never)."""
        return self._fresh.get((source_id, address.upper()))

    def sightings(self, address: str, source_id: str, since: float) -> list[TagSighting]:
        """What `source_id` heard of `address` at or after `since`, oldest first."""
        return [s for s in self._heard.get(address.upper(), ()) if s.source_id == source_id and s.at >= since]


@runtime_checkable
class TagListener(Protocol):
    """A source that can hear tags (a BLE adapter): the runtime hands it the hub while it runs."""

    def listen_for_tags(self, hub: TagHub) -> None: ...
