"""Score a vehicle detector on the hand-labelled photographs of `tests/data/vehicles.toml`.

Found: a labelled vehicle with a vehicle box (car/truck/bus/motorbike) at IoU ≥ `HIT_IOU`, after the
analyzer's own merging of boxes of one vehicle (`merge_vehicles`). Loose: any other vehicle box —
a false box, a box around two cars, a second box on a car — unless it lies on an `ignore` vehicle
(small, mostly hidden or cut by the edge). Each photo can be fed grey (an IR camera at night).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from gateway.lanes.fire_lanes.analyzer import merge_vehicles
from gateway.lanes.fire_lanes.detector import Detection
from gateway.lanes.fire_lanes.geometry import iou, overlap_of
from tests.support.media import ROOT, photo

LABELS = ROOT / "tests" / "data" / "vehicles.toml"
VEHICLES = frozenset({"car", "truck", "bus", "motorbike"})
HIT_IOU = 0.5
IGNORE_IOU = 0.3


@dataclass
class Labelled:
    name: str
    image: np.ndarray
    vehicles: list[tuple[float, float, float, float]]
    ignore: list[tuple[float, float, float, float]]


@dataclass
class Score:
    vehicles: int = 0
    found: int = 0
    loose: int = 0
    missed: list[str] = field(default_factory=list)
    loose_boxes: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.vehicles if self.vehicles else 0.0

    @property
    def loose_per_10(self) -> float:
        return 10 * self.loose / self.vehicles if self.vehicles else 0.0

    def __str__(self) -> str:
        return (
            f"found {self.found}/{self.vehicles} ({self.recall:.0%}), loose {self.loose} "
            f"({self.loose_per_10:.2f} per 10 vehicles); missed {self.missed}; loose {self.loose_boxes}"
        )


def labelled_photos(grey: bool = False) -> list[Labelled]:
    raw = tomllib.loads(LABELS.read_text())
    out = []
    for entry in raw["photo"]:
        image = cv2.imread(str(photo(entry["name"])))
        if "rows" in entry:
            image = image[entry["rows"][0] : entry["rows"][1]]
        if grey:
            image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        tag = entry["name"] + (f"@{entry['rows'][0]}" if "rows" in entry else "")
        out.append(
            Labelled(
                tag,
                np.ascontiguousarray(image),
                [tuple(b) for b in entry["vehicles"]],
                [tuple(b) for b in entry["ignore"]],
            )
        )
    return out


def score(detect: Callable[[np.ndarray], list[Detection]], photos: list[Labelled]) -> Score:
    total = Score()
    for item in photos:
        boxes = merge_vehicles([d for d in detect(item.image) if d.label in VEHICLES])
        total.vehicles += len(item.vehicles)
        taken: set[int] = set()
        for d in sorted(boxes, key=lambda d: -d.score):
            best = max(range(len(item.vehicles)), key=lambda i: iou(d.box, item.vehicles[i]), default=None)
            if best is not None and best not in taken and iou(d.box, item.vehicles[best]) >= HIT_IOU:
                taken.add(best)
                continue
            if any(iou(d.box, g) >= IGNORE_IOU or overlap_of(d.box, g) >= 0.7 for g in item.ignore):
                continue
            total.loose += 1
            total.loose_boxes.append(f"{item.name}:{d.label}{[round(v) for v in d.box]}")
        total.found += len(taken)
        total.missed += [
            f"{item.name}:{list(item.vehicles[i])}" for i in range(len(item.vehicles)) if i not in taken
        ]
    return total
