"""Approach-level fusion and several enrolment photos: the threshold chosen FAR first, then TAR.

On the labelled photographs of tests/data/faces.toml (tests/support/faces.py; 6 people with
several photos, 613 with one, 168 unlabelled strangers), every photo embedded by the door's own
pipeline:

- a resident is enrolled with `e` photos (1 or 3; rotating which), the rest of theirs are probes;
- an approach is `r` photos of one person fused as the door fuses frames (`fusion.fuse`: mean of
  unit descriptors, outliers left out), or one photo (`r` = 1: the per-frame rule's view);
- impostor scores: every approach of someone else (the 613 + 168 one-photo people, and r-photo
  approaches of the other five residents) against each resident's closest template;
- the threshold is the largest distance at which at most `far` of the impostor scores are
  accepted (FAR first), computed over every enrolment choice; TAR = genuine approaches within it;
  then the strangers accepted at the shipped `max_distance` by the door's whole rule (margin too).

Photos of one person are not frames of one approach (they differ more: sessions, years), so
fusion of photos is a proxy that flatters fusion less than it would real frames on the genuine
side. 6 genuine people: TAR differences of a few points are noise.

    python -m bench.face_approach [--far 1e-3] [--combos 12] [--embeddings FILE.npz]

(`--embeddings`: keep the descriptors in FILE and reuse them next time: embedding the 854
photos is most of the run.)
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from bench.common import cpu_seconds, print_table
from gateway.inference.catalog import catalog
from gateway.inference.engine import InferenceEngine
from gateway.lanes.faces.config import FacesSection
from gateway.lanes.faces.decision import classify
from gateway.lanes.faces.fusion import fuse
from gateway.lanes.faces.gallery import Resident, Templates
from gateway.lanes.faces.match import Matcher
from gateway.lanes.faces.pipeline import build_pipeline
from tests.support import faces as face_data

Row = tuple[str, str, str]


def approaches(vectors: list[np.ndarray], r: int, combos: int) -> list[np.ndarray]:
    """Up to `combos` fused descriptors of `r` of these vectors (fixed order: reproducible)."""
    out = []
    for chosen in itertools.islice(itertools.combinations(range(len(vectors)), r), combos):
        got = fuse([vectors[i] for i in chosen], 2.0, r)  # photos: no frame to leave out
        assert got is not None
        out.append(got[0])
    return out


def gallery(enrolled: dict[str, list[np.ndarray]]) -> Matcher:
    names = sorted(enrolled)
    vectors = np.vstack([v for n in names for v in enrolled[n]])
    owners = np.array([i for i, n in enumerate(names) for _ in enrolled[n]], np.int32)
    return Matcher(Templates(vectors, owners, [Resident(n, "b", "resident", "bench", 0) for n in names]))


def scores(people: dict[str, list[np.ndarray]], crowd: list[np.ndarray], e: int, r: int, combos: int):  # type: ignore[no-untyped-def]
    """(genuine distances, impostor distances, matchers) over the rotating enrolment choices."""
    genuine, impostor, matchers = [], [], []
    rounds = max(len(v) for v in people.values())
    for choice in range(min(rounds, 4)):
        enrolled, probes = {}, {}
        for name, vs in people.items():
            order = vs[choice % len(vs) :] + vs[: choice % len(vs)]
            enrolled[name], probes[name] = order[:e], order[e:]
        matcher = gallery(enrolled)
        matchers.append((matcher, enrolled, probes))
        per_resident = {res.id: i for i, res in enumerate(matcher.residents)}
        for name, mine in probes.items():
            for fused in approaches(mine, r, combos) if len(mine) >= r else []:
                d = matcher.distances(fused)
                genuine.append(float(d[per_resident[name]]))
                impostor += [float(x) for i, x in enumerate(d) if i != per_resident[name]]
        for v in crowd:
            impostor += [float(x) for x in matcher.distances(v)]
    return np.array(genuine), np.sort(np.array(impostor)), matchers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--far", type=float, default=1e-3)
    parser.add_argument("--combos", type=int, default=12, help="approaches per person and setting")
    parser.add_argument("--embeddings", type=Path, help="cache of the photos' descriptors (.npz)")
    args = parser.parse_args()
    faces = FacesSection()
    pipeline = build_pipeline(faces, InferenceEngine(1), catalog())
    items = face_data.photos()
    cpu0, started = cpu_seconds(), time.monotonic()
    if args.embeddings and args.embeddings.exists():
        cached = np.load(args.embeddings)
        names, stack = list(cached["names"]), cached["vectors"]
        assert names == [p.name for p in items], "the labelled set changed: delete the cache"
        vectors = [v if np.any(v) else None for v in stack]
    else:
        vectors = [e.vector for e in face_data.embed(pipeline, items)]
        if args.embeddings:
            dim = next(v.size for v in vectors if v is not None)
            stack = np.vstack([v if v is not None else np.zeros(dim, np.float32) for v in vectors])
            np.savez(args.embeddings, names=np.array([p.name for p in items]), vectors=stack)
    embed_s = (time.monotonic() - started, cpu_seconds() - cpu0)
    people: dict[str, list[np.ndarray]] = {}
    crowd: list[np.ndarray] = []
    for item, vector in zip(items, vectors, strict=True):
        if vector is None:
            continue
        if item.resident and item.person is not None:
            people.setdefault(item.person, []).append(vector)
        else:
            crowd.append(vector)
    shipped = pipeline.embedder.threshold if faces.max_distance is None else faces.max_distance
    rows: list[Row] = [
        ("photos embedded", f"{len(items)} in {embed_s[0]:.0f} s ({embed_s[1]:.0f} s CPU)", ""),
        ("people with several photos / one-photo impostors", f"{len(people)} / {len(crowd)}", ""),
    ]
    for e, r in ((1, 1), (1, 3), (3, 1), (3, 3)):
        genuine, impostor, matchers = scores(people, crowd, e, r, args.combos)
        t = face_data.threshold_at_far(impostor, args.far)
        t4 = face_data.threshold_at_far(impostor, args.far / 10)
        label = f"enrolled {e} photo(s), approach of {r}"
        rows.append((label, f"{len(genuine)} genuine / {len(impostor):,} impostor scores", ""))
        spread = (
            f"median {np.median(genuine):.3f}, p95 {np.percentile(genuine, 95):.3f}, max {genuine.max():.3f}"
        )
        rows.append(("  genuine distance", spread, ""))
        rows.append(("  closest impostor", f"{impostor[0]:.3f}", ""))
        rows.append((f"  threshold at FAR {args.far:g}", f"{t:.3f}", f"TAR {(genuine <= t).mean():.3f}"))
        rows.append(
            (f"  threshold at FAR {args.far / 10:g}", f"{t4:.3f}", f"TAR {(genuine <= t4).mean():.3f}")
        )
        far_shipped = float((impostor <= shipped).mean())
        rows.append(
            (
                f"  at max_distance {shipped:.2f}",
                f"FAR {far_shipped:.1e}",
                f"TAR {(genuine <= shipped).mean():.3f}",
            )
        )
        accepted = sum(
            classify(matcher.match(v), shipped, faces.min_margin) != ""
            and classify(matcher.match(v), shipped, faces.min_margin) != "?"
            for matcher, _, _ in matchers
            for v in crowd
        )
        rows.append(
            (
                "  strangers let in (whole rule, every choice)",
                f"{accepted} of {len(crowd) * len(matchers)}",
                "",
            )
        )
    print_table("Approach-level fusion and enrolment photos (python -m bench.face_approach)", rows)


if __name__ == "__main__":
    main()
