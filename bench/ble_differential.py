"""Our BTHome decoder against Home Assistant's parser (bthome-ble, a dev dependency) on random
adverts full of event objects (tests/support/bthome_reference.py makes them): how many adverts
disagree, how many events each side fires, how many undefined codes we counted instead of firing,
and the CPU time per advert of each parser.

    .venv/bin/python bench/ble_differential.py [--adverts 100000] [--seed 28]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.bthome_reference import our_events, random_event_advert, reference_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adverts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=28)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    adverts = [random_event_advert(rng) for _ in range(args.adverts)]
    t0 = time.process_time()
    ours = [our_events(d) for d in adverts]
    t1 = time.process_time()
    theirs = [reference_events(d) for d in adverts]
    t2 = time.process_time()
    differ = sum(o != t for (o, _), t in zip(ours, theirs, strict=True))
    our_events_n = sum(len(o) for o, _ in ours)
    their_events_n = sum(len(t) for t in theirs)
    undefined = sum(u for _, u in ours)
    print(f"adverts                     {args.adverts}")
    print(f"adverts that differ         {differ}")
    print(f"events (ours / HA's)        {our_events_n} / {their_events_n}")
    print(f"undefined codes, no event   {undefined}")
    per = [(t1 - t0) / args.adverts * 1e6, (t2 - t1) / args.adverts * 1e6]
    print(f"CPU per advert (ours / HA)  {per[0]:.1f} / {per[1]:.1f} µs")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
