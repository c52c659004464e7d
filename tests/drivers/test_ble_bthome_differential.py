"""Our BTHome decoder against Home Assistant's parser (bthome-ble from PyPI, a dev dependency) on
random adverts full of event objects, defined codes and undefined ones (issue 28: undefined button
codes, dimmer directions and command opcodes became events where HA emits nothing)."""

from __future__ import annotations

import random

from tests.support.bthome_reference import our_events, random_event_advert, reference_events


def test_events_match_home_assistants_parser_and_undefined_codes_make_none() -> None:
    rng = random.Random(28)
    mismatches: list[tuple[str, object, object]] = []
    undefined = events = 0
    for _ in range(2000):
        data = random_event_advert(rng)
        ours, unknown = our_events(data)
        theirs = reference_events(data)
        undefined += unknown
        events += len(ours)
        if ours != theirs:
            mismatches.append((data.hex(), ours, theirs))
    assert mismatches == []
    # The run exercised both sides: plenty of events, plenty of undefined codes turned into none.
    assert events > 1000 and undefined > 1000
