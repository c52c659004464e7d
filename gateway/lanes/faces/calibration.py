"""Threshold calibration from labelled photos, honest about how little a small folder shows.

Input: descriptors labelled by person. Output: the same-person (genuine) and other-person
(impostor) distance distributions, FAR/FRR at a threshold with 95 % confidence intervals, what a
pair FAR means at the door, and a suggested threshold only when enough people were measured.

Why people and not pairs: 5 people give 10 distinct pairs of people however many photos each has;
photo pairs of the same two people are strongly correlated, so counting them as independent
trials claims a resolution the folder does not have. The FAR interval therefore uses the number
of distinct person pairs as its sample size (conservative); the FRR interval uses the genuine pairs.

Why per frame: a stranger at the door is compared with every template in the gallery, every
frame. With a pair FAR p and m templates, the chance that one stranger frame falls within the
threshold of someone is 1 − (1 − p)^m (≈ m·p when small): a pair FAR of 5e-5 is ~14 % per frame
with 1,000 residents × 3 templates. The k-of-n rule needs k frames on the same resident, but the
frames of one stranger are far from independent, so the per-frame figure is the one to trust.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

MIN_PEOPLE = 20  # below this no threshold is suggested (10 people = 45 person pairs: FAR ≥ 2 %)
Z95 = 1.959964


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sane at 0 and at small n)."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + Z95**2 / trials
    centre = (p + Z95**2 / (2 * trials)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / trials + Z95**2 / (4 * trials**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def per_frame_far(pair_far: float, templates: int) -> float:
    """Chance that one stranger frame matches at least one of `templates` templates."""
    return float(-math.expm1(templates * math.log1p(-min(pair_far, 1 - 1e-12))))


@dataclass(frozen=True, slots=True)
class Distances:
    genuine: np.ndarray
    impostor: np.ndarray
    people: int  # people with at least one usable photo
    people_with_pairs: int  # people with two usable photos or more (genuine pairs)

    @property
    def person_pairs(self) -> int:
        return self.people * (self.people - 1) // 2


def distances(labelled: list[tuple[str, np.ndarray]]) -> Distances:
    genuine: list[float] = []
    impostor: list[float] = []
    for (la, va), (lb, vb) in itertools.combinations(labelled, 2):
        (genuine if la == lb else impostor).append(float(np.linalg.norm(va - vb)))
    counts: dict[str, int] = {}
    for label, _ in labelled:
        counts[label] = counts.get(label, 0) + 1
    return Distances(
        np.array(genuine),
        np.sort(np.array(impostor)),
        len(counts),
        sum(1 for n in counts.values() if n >= 2),
    )


def rates(d: Distances, threshold: float) -> dict[str, object]:
    """FAR and FRR at `threshold` with 95 % intervals (FAR's over distinct person pairs)."""
    false_accepts = int((d.impostor <= threshold).sum())
    false_rejects = int((d.genuine > threshold).sum())
    far = false_accepts / len(d.impostor) if len(d.impostor) else 0.0
    frr = false_rejects / len(d.genuine) if len(d.genuine) else 0.0
    # the share of person pairs with any accepted photo pair, over the person pairs
    far_lo, far_hi = wilson(round(far * d.person_pairs), d.person_pairs)
    frr_lo, frr_hi = wilson(false_rejects, len(d.genuine))
    return {
        "threshold": round(threshold, 3),
        "far": round(far, 5),
        "far_ci95": [round(far_lo, 5), round(far_hi, 5)],
        "frr": round(frr, 4),
        "frr_ci95": [round(frr_lo, 4), round(frr_hi, 4)],
        "false_accepts": false_accepts,
        "false_rejects": false_rejects,
    }


def suggest(d: Distances, target_far: float) -> float:
    """The threshold in the middle of the gap between the genuine pairs still accepted and the
    first impostor pair that must be rejected for a pair FAR ≤ target."""
    allowed = int(np.floor(target_far * len(d.impostor)))
    reject = float(d.impostor[min(allowed, len(d.impostor) - 1)])
    below = d.genuine[d.genuine < reject]
    return float((below.max() + reject) / 2) if below.size else reject - 1e-3


def refusal(d: Distances) -> str | None:
    """Why no threshold may be suggested from this folder, or None."""
    if d.people < MIN_PEOPLE:
        more = MIN_PEOPLE - d.people
        return (
            f"only {d.people} people: a threshold needs photos of at least {MIN_PEOPLE} different "
            f"people ({more} more); {d.person_pairs} person pairs cannot show a false-accept rate "
            f"below {1 / max(d.person_pairs, 1):.3f}"
        )
    if d.people_with_pairs < 2:
        return "need two or more photos of at least two people (same-person pairs)"
    return None
