"""Vectorised matching of one probe descriptor against every template in memory.

Distances come from ‖t‖² − 2·t·q + ‖q‖² (one matrix-vector product for the whole gallery); a
resident's distance is the smallest over their templates (`minimum.reduceat` over the grouped
rows); the best and second-best residents come from a partial sort. 10,000 residents with three
templates each take well under a millisecond on one core (bench/faces.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.lanes.faces.gallery import Resident, Templates


@dataclass(frozen=True, slots=True)
class Match:
    resident: Resident | None  # the closest resident (None: empty gallery)
    distance: float  # to the closest resident (inf when none)
    second: float  # to the second-closest resident (inf when only one)

    @property
    def margin(self) -> float:
        return self.second - self.distance


class Matcher:
    def __init__(self, templates: Templates) -> None:
        self.residents = templates.residents
        self.vectors = np.ascontiguousarray(templates.vectors, np.float32)
        self.sq_norms = (self.vectors**2).sum(axis=1)
        owners = templates.owners
        # start row of each resident's group (rows are grouped by resident)
        self.starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]]) if owners.size else owners

    def __len__(self) -> int:
        return len(self.residents)

    def _squared(self, probe: np.ndarray) -> np.ndarray:
        """Each resident's smallest squared distance to the probe (≥ 0: rounding can dip below)."""
        q = probe.astype(np.float32)
        d2 = self.sq_norms - 2.0 * (self.vectors @ q) + float(q @ q)
        per_resident = np.minimum.reduceat(d2, self.starts)
        return np.maximum(per_resident, 0.0, out=per_resident)

    def match(self, probe: np.ndarray) -> Match:
        if not self.residents:
            return Match(None, float("inf"), float("inf"))
        per_resident = self._squared(probe)
        if per_resident.size == 1:
            return Match(self.residents[0], float(np.sqrt(per_resident[0])), float("inf"))
        top2 = np.argpartition(per_resident, 1)[:2]
        first, second = sorted(top2, key=lambda i: per_resident[i])
        return Match(
            self.residents[int(first)],
            float(np.sqrt(per_resident[first])),
            float(np.sqrt(per_resident[second])),
        )

    def distances(self, probe: np.ndarray) -> np.ndarray:
        """Each resident's distance to the probe (their closest template), in `residents` order."""
        if not self.residents:
            return np.zeros(0, np.float32)
        return np.sqrt(self._squared(probe))

    def ranking(self, probe: np.ndarray, count: int = 3) -> list[tuple[Resident, float]]:
        """The `count` closest residents with their distances, closest first (for verify)."""
        if not self.residents:
            return []
        per_resident = np.sqrt(self._squared(probe))
        order = np.argsort(per_resident)[:count]
        return [(self.residents[int(i)], float(per_resident[i])) for i in order]
