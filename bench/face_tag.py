"""What `require = "face+tag"` costs a decision, against face alone (issue 26 item 4).

A door clip of the enrolled resident (composited from a registry photograph, 5 frames a second),
a gallery of 1,000 residents (the resident and 999 synthetic ones), each with a tag; the hub full
of sightings (the resident's tag fresh within the window, 31 older adverts of each other tag).
Each approach runs frame by frame through the door's own pipeline (detection, gates, embedding,
match, approach fusion) and `Decider` until it decides, on one inference thread, for:

- face: `require = "face"`;
- face+tag: `require = "face+tag"` (the second factor after liveness).

Printed: CPU time of the thread per decision (the whole approach, every frame) and of the
decisive step alone (fusion, liveness, the second factor), p50 and p95. CPU time, not wall:
the dev machine is shared. Liveness `micro_motion` (the tag check does not depend on it).

    python -m bench.face_tag [--approaches 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

import numpy as np

from bench.common import print_table
from drivers.camera.door_scene import FACE_BOXES, DoorScene, Visit
from gateway.core.tags import TagHub, TagSighting
from gateway.inference.catalog import catalog
from gateway.inference.engine import InferenceEngine
from gateway.lanes.faces.config import FaceAccessConfig, FacesSection
from gateway.lanes.faces.decision import Decider, Observation
from gateway.lanes.faces.gallery import Resident, Templates
from gateway.lanes.faces.liveness import MicroMotion
from gateway.lanes.faces.match import Matcher
from gateway.lanes.faces.pipeline import build_pipeline
from gateway.lanes.faces.second_factor import TagCheck
from gateway.lanes.faces.tag_store import ResidentTag

MEDIA = Path(__file__).resolve().parents[1] / ".cache" / "media"
RESIDENTS = 1000


def setup() -> tuple[object, Matcher, dict[str, ResidentTag], TagHub]:
    faces = FacesSection()
    pipeline = build_pipeline(faces, InferenceEngine(1), catalog())
    enrol = DoorScene([Visit(MEDIA / "faces/obama.jpg", FACE_BOXES["faces/obama.jpg"], 0, 5)], 5)
    probe = pipeline.analyse(enrol.frame(1.0))
    assert probe.vector is not None, probe.reason()
    rng = np.random.default_rng(4)
    others = rng.normal(0, 1, (RESIDENTS - 1, probe.vector.size)).astype(np.float32)
    others /= np.linalg.norm(others, axis=1, keepdims=True)
    people = [Resident(f"r-{i:04d}", "u", "resident", "bench", 0) for i in range(RESIDENTS)]
    matcher = Matcher(
        Templates(np.vstack([probe.vector, others]), np.arange(RESIDENTS, dtype=np.int32), people)
    )
    tags = {
        p.id: ResidentTag(
            p.id,
            ":".join(f"{b:02X}" for b in (0x3C, 0x2E, i >> 24 & 255, i >> 16 & 255, i >> 8 & 255, i & 255)),
            bytes(16),
        )
        for i, p in enumerate(people)
    }
    hub = TagHub()
    hub.watch({t.address: t.key for t in tags.values()})
    return pipeline, matcher, tags, hub


def run(mode: str, approaches: int, pipeline, matcher: Matcher, tags, hub: TagHub):  # type: ignore[no-untyped-def]
    faces = FacesSection()
    entrance = FaceAccessConfig(
        id="lobby-face", camera="cam", door="lobby", require=mode, tag_source="ble-lobby", cooldown_s=0
    )  # type: ignore[arg-type]
    scene = DoorScene([Visit(MEDIA / "faces/obama2.jpg", FACE_BOXES["faces/obama2.jpg"], 0, 60)], 60)
    whole, step = [], []
    for a in range(approaches):
        now = time.monotonic()
        for tag in tags.values():  # 31 old adverts of everyone, the resident's fresh
            for k in range(31):
                hub.heard(TagSighting("ble-lobby", tag.address, "fresh", now - 60 - k))
        hub.heard(TagSighting("ble-lobby", tags["r-0000"].address, "fresh", now - 1))
        factor = (
            TagCheck(hub, "ble-lobby", 10.0, time.monotonic, lambda: tags) if mode == "face+tag" else None
        )
        decider = Decider(entrance, faces, 1.06, MicroMotion(), dt.UTC, {}, factor, matcher.match)
        cpu0 = time.thread_time()
        for f in range(100):
            image = scene.frame(a * 2.0 + f * 0.2)
            probe = pipeline.analyse(image)
            if not probe.usable:
                continue
            match = matcher.match(probe.vector)
            obs = Observation(
                int(f * 200), match, decider.label(match), probe.face.landmarks, probe.chip, probe.vector
            )
            s0 = time.thread_time()
            decision, _ = decider.observe(obs, int(f * 200))
            if decision is not None:
                step.append((time.thread_time() - s0) * 1000)
                whole.append((time.thread_time() - cpu0) * 1000)
                assert decision.granted, decision.reason
                break
    return whole, step


def p50_p95(samples: list[float]) -> str:
    ordered = sorted(samples)
    return f"{statistics.median(ordered):.3f} ms p50, {ordered[int(0.95 * (len(ordered) - 1))]:.3f} ms p95"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--approaches", type=int, default=20)
    args = parser.parse_args()
    pipeline, matcher, tags, hub = setup()
    rows = []
    for mode in ("face", "face+tag"):
        whole, step = run(mode, args.approaches, pipeline, matcher, tags, hub)
        rows.append(
            (f"{mode}: CPU per decision (whole approach)", p50_p95(whole), f"{len(whole)} approaches")
        )
        rows.append((f"{mode}: CPU of the decisive step", p50_p95(step), "fusion + liveness + tag"))
    factor = TagCheck(hub, "ble-lobby", 10.0, time.monotonic, lambda: tags)
    samples = []
    for _ in range(2000):
        s0 = time.thread_time()
        assert factor("r-0000") is None
        samples.append((time.thread_time() - s0) * 1000)
    rows.append(("the second factor alone (1,000 tags × 32 sightings)", p50_p95(samples), "TagCheck"))
    later = TagCheck(hub, "ble-lobby", 10.0, lambda: time.monotonic() + 100, lambda: tags)
    denied = []
    for _ in range(200):  # the worst case: nothing fresh from anyone, every tag looked at
        s0 = time.thread_time()
        assert later("r-0999") == "tag_not_heard"
        denied.append((time.thread_time() - s0) * 1000)
    rows.append(("  … refusing, nothing fresh from anyone (every tag scanned)", p50_p95(denied), ""))
    print_table("face+tag vs face alone, 1 inference thread (python -m bench.face_tag)", rows)


if __name__ == "__main__":
    main()
