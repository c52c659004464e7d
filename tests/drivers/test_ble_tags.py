"""Residents' tags as a BLE source judges them (drivers/ble/tags.py), on real advert bytes: the
BTHome spec's encrypted example (address 54:48:E6:8F:80:A5, counter 0x33221100) and our encoder's
adverts after it. Fresh, repeated, replayed, plaintext and wrong-key adverts; counters that
survive a restart; and the BLE source routing a watched tag's advert to the hub, not upstream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from drivers.ble import bthome
from drivers.ble.adverts import BTHOME_UUID, Advert, mac_bytes
from drivers.ble.config import BleConfig
from drivers.ble.replay import RestartPolicy
from drivers.ble.source import BleSource
from drivers.ble.tags import TAG_COUNTERS_NS, TagReceiver
from gateway.core import MemoryStore, Record, SourceContext
from gateway.core.clock import SystemClock
from gateway.core.tags import TagHub

ADDRESS = "54:48:E6:8F:80:A5"
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
SPEC_ADVERT = bytes.fromhex("41a47266c95f730011223378237214")  # counter 0x33221100
OTHER_KEY = bytes.fromhex("0a1b2c3d4e5f60718293a4b5c6d7e8f9")


def advert(data: bytes, ts: float, address: str = ADDRESS) -> Advert:
    return Advert(address, -60, {BTHOME_UUID: data}, {}, None, ts)


def encrypted(counter: int, key: bytes = KEY) -> bytes:
    return bthome.encode(
        [(0x00, counter & 0xFF), (0x3A, 1)], mac=mac_bytes(ADDRESS), key=key, counter=counter
    )


def receiver(store: MemoryStore | None = None) -> tuple[TagHub, TagReceiver]:
    hub = TagHub()
    hub.watch({ADDRESS: KEY})
    return hub, TagReceiver(hub, "ble-lobby", store or MemoryStore(), RestartPolicy())


def verdicts(hub: TagHub) -> list[str]:
    return [s.verdict for s in hub.sightings(ADDRESS, "ble-lobby", 0)]


def test_each_advert_of_a_watched_tag_is_judged() -> None:
    hub, tags = receiver()
    assert tags.handle(advert(SPEC_ADVERT, 10.0)) == "fresh"
    assert tags.handle(advert(SPEC_ADVERT, 10.1)) is None  # the tag repeating its transmission
    assert tags.handle(advert(encrypted(0x33221101), 11.0)) == "fresh"
    assert tags.handle(advert(SPEC_ADVERT, 12.0)) == "replayed"  # an older recording, played back
    assert tags.handle(advert(encrypted(0x33221101), 14.0)) == "replayed"  # the last one, long after
    plain = bthome.encode([(0x00, 7), (0x3A, 1)])
    assert tags.handle(advert(plain, 15.0)) == "plaintext"  # anyone can send this from the address
    assert tags.handle(advert(encrypted(0x33221102, OTHER_KEY), 16.0)) == "wrong_key"
    assert tags.handle(advert(b"", 17.0)) == "malformed"
    assert tags.handle(advert(encrypted(0x33221103), 18.0)) == "fresh"
    assert verdicts(hub) == [
        "fresh", "fresh", "replayed", "replayed", "plaintext", "wrong_key", "malformed", "fresh"
    ]  # fmt: skip
    assert [s.at for s in hub.sightings(ADDRESS, "ble-lobby", 15.5)] == [16.0, 17.0, 18.0]
    assert hub.sightings(ADDRESS, "ble-garage", 0) == []  # heard by another adapter: not here
    assert tags.counts["tag_repeats"] == 1 and tags.counts["tag_replayed"] == 2


def test_an_unwatched_address_is_not_judged_and_unwatching_forgets() -> None:
    hub, tags = receiver()
    assert tags.handle(advert(SPEC_ADVERT, 1.0, address="AA:BB:CC:DD:EE:FF")) is None
    assert tags.handle(advert(SPEC_ADVERT, 1.0)) == "fresh"
    hub.watch({})
    assert not tags.watching(ADDRESS) and hub.sightings(ADDRESS, "ble-lobby", 0) == []
    assert tags.handle(advert(encrypted(0x33221105), 2.0)) is None


def test_counters_survive_a_restart_without_naming_the_tag() -> None:
    store = MemoryStore()
    _, tags = receiver(store)
    assert tags.handle(advert(encrypted(0x33221105), 1.0)) == "fresh"
    tags.flush(2.0)
    rows = {key: value for (ns, key), value in store._rows.items() if ns == TAG_COUNTERS_NS}
    assert len(rows) == 1 and all(key.startswith("t-") for key in rows)
    assert ADDRESS not in repr(rows) and KEY.hex() not in repr(rows)
    _, again = receiver(store)  # the gateway restarted: a recording of the old advert is stale
    assert again.handle(advert(SPEC_ADVERT, 50.0)) == "replayed"
    assert again.handle(advert(encrypted(0x33221106), 51.0)) == "fresh"


class Radio:
    """Our scanner interface, played by the test: it holds the source's callback."""

    mode = "test"

    def __init__(self) -> None:
        self.on_advert: Callable[[Advert], None] | None = None

    async def start(self, on_advert: Callable[[Advert], None]) -> None:
        self.on_advert = on_advert

    async def stop(self) -> None:
        self.on_advert = None

    async def reset_adapter(self) -> None:
        pass


def test_the_ble_source_hands_a_watched_tag_to_the_hub_and_emits_nothing() -> None:
    config = BleConfig.model_validate({"id": "ble-lobby", "type": "ble", "sensors": []})
    radio = Radio()
    source = BleSource(config, scanner=radio)
    hub = TagHub()
    hub.watch({ADDRESS: KEY})
    source.listen_for_tags(hub)  # as the runtime does (gateway.runtime.sources)
    emitted: list[Record] = []

    async def scenario() -> None:
        ctx = SourceContext("ble-lobby", SystemClock(), lambda r: emitted.append(r) or True)
        task = asyncio.create_task(source.run(ctx))
        while radio.on_advert is None:
            await asyncio.sleep(0.01)
        radio.on_advert(advert(SPEC_ADVERT, 3.0, address="AA:BB:CC:DD:EE:FF"))  # nobody's
        radio.on_advert(advert(SPEC_ADVERT, 3.0))
        for _ in range(500):
            if hub.sightings(ADDRESS, "ble-lobby", 0):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert verdicts(hub) == ["fresh"] and emitted == []
    assert source.counts["ignored"] == 1
