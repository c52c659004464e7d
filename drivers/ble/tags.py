"""Residents' tags heard by a BLE source: each advert of a watched address judged for the `TagHub`.

The face lane watches addresses with their bindkeys (`gateway.core.tags`); for each advert of one,
this says whether it proves the tag is here now:

- `fresh`: decrypted and authenticated with the tag's bindkey (AES-CCM tag verified) and its
  frame counter above every counter accepted before (`ReplayGuard`; a counter restart counts only
  after the guard's probation, as for door sensors);
- `replayed`: authenticated but its counter is not above the highest accepted: a recording played
  back (or the same transmission heard long after);
- `plaintext`: a readable advert from the tag's address: anyone can send one (bthome-ble's
  downgrade guard: a device known to encrypt never has a plaintext advert believed);
- `wrong_key`: encrypted, but not with the tag's key (forged, or the tag was re-paired);
- `malformed`: not a BTHome/MiBeacon advert we can read.

A real tag repeats each transmission a few times: a copy of the last fresh advert (same bytes)
within `REPEAT_S` of it is no new sighting, neither fresh nor a replay. Later, the same bytes are
a replay. Counters are kept in the source's store (`ble.tag_counters`, by address and key
fingerprint, the row named by a fingerprint of key and address so state.db never holds a
resident's tag address) so a restart of the gateway does not make old recordings fresh again.

Pure of I/O apart from the store; driven by the advert's receive time.
"""

from __future__ import annotations

import logging
from collections import Counter

from drivers.ble.adverts import Advert, Decoded, mac_bytes
from drivers.ble.counters import ReplayCounters, key_fingerprint
from drivers.ble.decode import decode_advert
from drivers.ble.replay import ReplayGuard, RestartPolicy, Verdict
from gateway.core import KeyValueStore
from gateway.core.tags import TagHub, TagSighting
from gateway.core.tags import Verdict as TagVerdict

log = logging.getLogger("lintel.ble")

TAG_COUNTERS_NS = "ble.tag_counters"
REPEAT_S = 2.0


def _row(key: bytes, address: str) -> str:
    """The tag's counter row in the store: names the tag without its address."""
    return "t-" + key_fingerprint(key + address.encode())


class TagReceiver:
    """Judges the adverts of the hub's watched tags heard by source `source_id`."""

    def __init__(self, hub: TagHub, source_id: str, store: KeyValueStore, policy: RestartPolicy) -> None:
        self.hub = hub
        self.source_id = source_id
        self.policy = policy
        self.counters = ReplayCounters(store, source_id, namespace=TAG_COUNTERS_NS)
        self.counts: Counter[str] = Counter()
        self._guards: dict[str, tuple[str, ReplayGuard]] = {}  # address → (key fingerprint, guard)
        self._last: dict[str, tuple[bytes, float]] = {}  # address → (last fresh advert's bytes, when)
        self._logged: set[TagVerdict] = set()

    def watching(self, address: str) -> bool:
        return self.hub.watching(address)

    def handle(self, advert: Advert) -> TagVerdict | None:
        """Judge one advert of a watched tag and report it to the hub; None for a repeat (or an
        address no longer watched)."""
        key = self.hub.key(advert.address)
        if key is None:
            return None
        raw = b"".join(advert.service_data.values())
        result = decode_advert(advert, mac_bytes(advert.address), key)
        verdict: TagVerdict
        if result is None or not isinstance(result, Decoded):
            verdict = "wrong_key" if result is not None and result.reason == "wrong_key" else "malformed"
        elif not result.authenticated:
            verdict = "plaintext"
        else:
            last = self._last.get(advert.address)
            if last is not None and last[0] == raw and advert.ts - last[1] <= REPEAT_S:
                self.counts["tag_repeats"] += 1
                return None
            assert result.counter is not None
            checked = self._guard(advert.address, key).check(result.counter, advert.ts)
            verdict = "replayed" if checked is Verdict.OLD else "fresh"
            if verdict == "fresh":
                self._last[advert.address] = (raw, advert.ts)
                self.counters.touched(_row(key, advert.address), urgent=True)
                self.counters.flush(advert.ts)
        self.counts[f"tag_{verdict}"] += 1
        if verdict != "fresh" and verdict not in self._logged:
            self._logged.add(verdict)  # once per kind: the face lane's events say which door and when
            log.warning("%s: a resident's tag sent a %s advert: not believed", self.source_id, verdict)
        self.hub.heard(TagSighting(self.source_id, advert.address, verdict, advert.ts))
        return verdict

    def _guard(self, address: str, key: bytes) -> ReplayGuard:
        fingerprint = key_fingerprint(key)
        known = self._guards.get(address)
        if known is None or known[0] != fingerprint:  # first advert, or the tag was re-keyed
            known = (fingerprint, self.counters.guard(_row(key, address), key, self.policy))
            self._guards[address] = known
        return known[1]

    def flush(self, now: float) -> None:
        self.counters.flush(now, force=True)
