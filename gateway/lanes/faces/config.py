"""Config of face access: `[faces]` (models, gallery, decision rule, quality gates, privacy) and
`[[face_access]]` (one entry per door camera).

[faces]
max_distance = 1.06       # default: the embedder's; `lintel faces calibrate DIR` with ≥ 20 people
min_margin = 0.18
k = 3
n = 5

[[face_access]]
id = "lobby-face"
camera = "cam-lobby"      # a [[sources]] camera looking at the door
door = "lobby"            # a [[doors]] entry: pulsed on a grant
require = "face+tag"      # optional second factor: the resident's BLE tag heard here too
tag_source = "ble-lobby"  # the [[sources]] ble adapter at this door that hears the tags
tag_window_s = 10         # the tag's authenticated advert at most this old at the decision
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from gateway.core.config_base import Identifier, StrictModel, custom_error
from gateway.core.references import BLE, CAMERA, SOURCE_KINDS, Named, Ref

if TYPE_CHECKING:  # quality imports OpenCV: a gateway without cameras must not pay for it
    from gateway.lanes.faces.quality import QualityLimits


class FacesSection(StrictModel):
    detector: str = Field("yunet-2023mar", description="Face detector model (`lintel models list`).")
    embedder: str = Field(
        "sface-2021dec-int8",
        description="Face embedder model (templates of another one need re-enrolment).",
    )
    gallery: str | None = Field(None, description="Gallery database (default: <state_dir>/faces.db).")
    key_file: str | None = Field(
        None, description="AES key of the gallery, mode 0600 (default: <state_dir>/faces.key)."
    )
    max_distance: float | None = Field(
        None, gt=0, lt=2, description="Accept at or below this distance (default: the embedder's)."
    )
    min_margin: float = Field(
        0.18,
        ge=0,
        lt=1,
        description="Second-closest resident must be this much farther away (docs/face-calibration.md).",
    )
    decide_on: Literal["approach", "frame"] = Field(
        "approach",
        description="approach: who it is comes from the fused descriptor of the approach's frames "
        "(docs/face-calibration.md); frame: from single frames (k of n must match).",
    )
    k: int = Field(3, ge=1, le=20, description="Frames that must agree on the same resident …")
    n: int = Field(5, ge=1, le=30, description="… among this many consecutive usable frames.")
    interval_s: float = Field(0.2, ge=0.05, le=5, description="Face detection cadence per camera.")
    min_face_score: float = Field(0.7, gt=0, lt=1, description="Detector score for a face.")
    min_eye_px: float = Field(
        24, ge=8, le=500, description="Smallest inter-eye distance in pixels (docs/face-calibration.md)."
    )
    max_yaw: float = Field(0.4, gt=0, le=1, description="Largest sideways turn (inter-eye units).")
    max_roll_deg: float = Field(35, gt=0, le=90, description="Largest head tilt in degrees.")
    min_sharpness: float = Field(30, ge=0, description="Laplacian variance of the aligned face.")
    liveness: Literal["off", "micro_motion", "model"] = Field(
        "model",
        description=(
            "Anti-spoofing check: model (presentation-attack detector + temporal consistency + "
            "micro-motion); micro_motion alone refuses a still photo; off: none."
        ),
    )
    pad_models: list[str] = Field(
        ["minifasnet-v2-2.7", "minifasnet-v1se-4.0"],
        min_length=1,
        description='Presentation-attack detector models of liveness = "model" (`lintel models list`).',
    )
    keep_unknown_crops: bool = Field(
        False, description="Keep face crops of denied unknown faces (privacy: off by default)."
    )
    unknown_retention_hours: float = Field(24, gt=0, le=720, description="How long such crops stay.")

    @model_validator(mode="after")
    def _window(self) -> FacesSection:
        if self.k > self.n:
            raise custom_error(
                "k is above n",
                f"k ≤ n (k of the last n frames must agree; n is {self.n})",
                key="k",
                got=str(self.k),
            )
        return self

    def warnings(self, entrances: list[FaceAccessConfig]) -> list[str]:
        """Settings that are valid but weaken a door (shown by `lintel check-config`)."""
        out = []
        off = [e.id for e in entrances if self.liveness_of(e) == "off"]
        if off:
            out.append(
                f"faces.liveness: off at {', '.join(off)} — a printed photograph or a phone held to "
                'the camera opens the door; use liveness = "model" (the default)'
            )
        for i, e in enumerate(entrances):
            if e.tag_source is not None and e.require == "face":
                out.append(
                    f'face_access[{i}].tag_source: set, but require is "face": {e.id} opens without '
                    'the tag; set require = "face+tag" (or remove tag_source)'
                )
        return out

    def liveness_of(self, entrance: FaceAccessConfig) -> str:
        """The liveness check of an entrance: its own `liveness`, or `[faces] liveness`."""
        return entrance.liveness or self.liveness

    def needs_pad(self, entrances: list[FaceAccessConfig]) -> bool:
        return any(self.liveness_of(e) == "model" for e in entrances)

    def limits(self) -> QualityLimits:
        from gateway.lanes.faces.quality import QualityLimits

        return QualityLimits(
            min_eye_px=self.min_eye_px,
            max_yaw=self.max_yaw,
            max_roll_deg=self.max_roll_deg,
            min_sharpness=self.min_sharpness,
        )


class FaceAccessConfig(StrictModel):
    id: Identifier = Field(description="Entrance id; the source id of its access events.")
    camera: str = Field(description="Id of the camera source looking at the door.")
    door: str = Field(description="Id of the [[doors]] entry pulsed on a grant.")
    direction: Literal["in", "out", "both"] = Field(
        "in", description="Which way this door is passed (anti-passback)."
    )
    anti_passback_s: float = Field(
        0, ge=0, le=86400, description="Refuse a second entry without an exit for this long (0: off)."
    )
    cooldown_s: float = Field(
        8, ge=0, le=600, description="No new decision for the same person for this long."
    )
    max_attempts_per_minute: int = Field(
        6, ge=1, le=600, description="Denied decisions per minute before the camera is locked out."
    )
    lockout_s: float = Field(60, ge=1, le=3600, description="How long face decisions stop after that.")
    liveness: Literal["off", "micro_motion", "model"] | None = Field(
        None, description="This door's anti-spoofing check (default: [faces] liveness)."
    )
    require: Literal["face", "face+tag"] = Field(
        "face",
        description="face+tag: also the resident's BLE tag (`lintel faces tag`), heard by tag_source "
        "with an authenticated, fresh advert within tag_window_s (high-risk doors).",
    )
    tag_source: str | None = Field(
        None, description="The [[sources]] entry of type ble that hears the tags at this door (face+tag)."
    )
    tag_window_s: float = Field(
        10, ge=1, le=120, description="How old the tag's advert may be at the decision (face+tag)."
    )

    @model_validator(mode="after")
    def _tag_needs_a_source(self) -> FaceAccessConfig:
        if self.require == "face+tag" and self.tag_source is None:
            raise custom_error(
                "face+tag needs the BLE adapter that hears the tags",
                'tag_source = "<id of a [[sources]] entry of type ble at this door>", or require = "face"',
                key="tag_source",
                got="nothing",
            )
        return self

    @field_validator("camera", "door")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value:
            raise custom_error("empty id", "the id of a configured entry")
        return value


def names(entrances: list[FaceAccessConfig]) -> list[Named]:
    return [Named(f"face_access[{i}].id", e.id, "entrance") for i, e in enumerate(entrances)]


def references(entrances: list[FaceAccessConfig]) -> list[Ref]:
    """The camera each entrance is watched by, and the door a grant pulses."""
    refs: list[Ref] = []
    for i, e in enumerate(entrances):
        refs.append(Ref(f"face_access[{i}].camera", e.camera, CAMERA, "unknown camera", SOURCE_KINDS[CAMERA]))
        what = "a [[doors]] entry (the relay a grant pulses)"
        refs.append(Ref(f"face_access[{i}].door", e.door, "door", "unknown door", what))
        if e.tag_source is not None:
            path = f"face_access[{i}].tag_source"
            refs.append(Ref(path, e.tag_source, BLE, "unknown BLE source", SOURCE_KINDS[BLE]))
    return refs
