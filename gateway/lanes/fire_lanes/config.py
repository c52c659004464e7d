"""Config of the fire lanes: `[vision]` (their detector, evidence) and `[[fire_lanes]]`. The
engine's threads and the model catalog are `[inference]`'s; the time zone is `[gateway]`'s.

[vision]
detector = "yolov4-tiny-coco-int8"   # a manifest name: `lintel models list`

[[fire_lanes]]
id = "lane-north"
camera = "cam-north"            # a [[sources]] entry of type camera
# corners in normalised image coordinates (0,0 top left; 1,1 bottom right): check them by
# looking at `lintel camera snapshot cam-north --out lane.png`
polygon = [[0.05, 0.62], [0.95, 0.62], [0.95, 0.98], [0.05, 0.98]]
grace_s = 180
[[fire_lanes.exempt]]           # loading window: no alarm raised
days = ["mon", "tue", "wed", "thu", "fri"]
from = "07:00"
to = "09:00"
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from gateway.core.config_base import Identifier, StrictModel, custom_error
from gateway.core.references import CAMERA, SOURCE_KINDS, Named, Ref
from gateway.core.windows import Window

VEHICLES = ("car", "truck", "bus", "motorcycle", "motorbike")


class VisionSection(StrictModel):
    detector: str = Field("yolov4-tiny-coco-int8", description="Model name from `lintel models list`.")
    input_size: list[int] | None = Field(
        None,
        description="Detector input [width, height], multiples of 32, for a model with a free input "
        "shape (default: the manifest's).",
    )
    min_score: float = Field(0.25, gt=0, lt=1, description="Detections below this are ignored everywhere.")
    evidence_dir: str | None = Field(None, description="Evidence JPEGs (default: <state_dir>/evidence).")
    evidence_retention_days: float = Field(
        30, gt=0, le=3650, description="Evidence older than this is deleted."
    )
    evidence_max_mb: float = Field(200, gt=0, description="Oldest evidence is deleted beyond this size.")

    @field_validator("input_size")
    @classmethod
    def _input_size(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) != 2 or any(v % 32 or not 128 <= v <= 1280 for v in value)):
            raise custom_error(
                "not a detector input size", "[width, height], multiples of 32 from 128 to 1280",
                got=str(value),
            )  # fmt: skip
        return value

    def detector_input(self) -> tuple[int, int] | None:
        return (self.input_size[0], self.input_size[1]) if self.input_size else None


class FireLaneConfig(StrictModel):
    id: Identifier = Field(description="Lane id; the source id of the lane's events.")
    camera: str = Field(description="Id of the camera source that sees the lane.")
    polygon: list[list[float]] = Field(description="Corners (x, y) in 0..1 image coordinates.")
    classes: list[str] = Field(default_factory=lambda: ["car", "truck", "bus", "motorcycle", "motorbike"])
    min_score: float = Field(0.3, gt=0, lt=1, description="Vehicle detections below this are ignored.")
    min_area: float = Field(0.004, ge=0, lt=1, description="Smallest vehicle box as a fraction of the frame.")
    overlap: float = Field(0.5, gt=0, le=1, description="Share of the box's bottom strip inside the lane.")
    grace_s: float = Field(180, ge=0, le=86400, description="Parked longer than this is a violation.")
    settle_s: float = Field(5, ge=0, le=600, description="A vehicle still for this long counts as parked.")
    exit_delay_s: float = Field(20, ge=1, le=3600, description="Lane seen empty this long before it clears.")
    forced_interval_s: float = Field(5, ge=0.5, le=600, description="Detector cadence without motion.")
    motion_interval_s: float = Field(1, ge=0.1, le=60, description="Detector cadence while the lane moves.")
    motion_threshold: float = Field(
        0.01, gt=0, lt=1, description="Share of lane pixels changed that is motion."
    )
    save_interval_s: float = Field(
        10, ge=0.5, le=3600,
        description="Save the dwell clock and last sighting between transitions at most this often.",
    )  # fmt: skip
    renotify_min: float = Field(30, ge=0, description="Repeat an unacknowledged alarm this often (0: never).")
    active: list[Window] = Field(
        default_factory=list, description="When the lane is watched (empty: always)."
    )
    exempt: list[Window] = Field(default_factory=list, description="When parking is allowed (loading).")

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, value: list[list[float]]) -> list[list[float]]:
        if len(value) < 3:
            raise custom_error(
                "a lane needs at least 3 corners", "[[x, y], [x, y], [x, y], …]", got=str(len(value))
            )
        for corner in value:
            if len(corner) != 2:
                raise custom_error("a corner is two numbers", "[x, y]", got=str(corner))
            x, y = corner
            if not (0 <= x <= 1 and 0 <= y <= 1):
                raise custom_error(
                    f"corner [{x}, {y}] is outside the picture",
                    "x and y between 0 and 1 (fractions of the image width and height)",
                    got=f"[{x}, {y}]",
                )
        area = 0.5 * abs(
            sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(value, value[1:] + value[:1], strict=True))
        )
        if area < 0.001:
            raise custom_error(
                "the lane has no area", "corners that enclose part of the picture", got=str(value)
            )
        return value

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: list[str]) -> list[str]:
        if not value:
            raise custom_error("no vehicle classes", f"some of {', '.join(VEHICLES)}")
        return value

    @model_validator(mode="after")
    def _cadence(self) -> FireLaneConfig:
        if self.motion_interval_s > self.forced_interval_s:
            raise custom_error(
                "motion_interval_s is above forced_interval_s",
                f"a value ≤ {self.forced_interval_s} (motion makes the detector run sooner, not later)",
                key="motion_interval_s",
                got=str(self.motion_interval_s),
            )
        return self


def names(lanes: list[FireLaneConfig]) -> list[Named]:
    return [Named(f"fire_lanes[{i}].id", lane.id, "fire_lane") for i, lane in enumerate(lanes)]


def references(lanes: list[FireLaneConfig]) -> list[Ref]:
    """The camera each fire lane is watched by."""
    return [
        Ref(f"fire_lanes[{i}].camera", lane.camera, CAMERA, "unknown camera", SOURCE_KINDS[CAMERA])
        for i, lane in enumerate(lanes)
    ]
