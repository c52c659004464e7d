"""Meter profiles: register maps shipped as data files in `drivers/modbus/profiles/*.toml`.

A profile names its source document and lists points; each point inherits the profile's default
`function` and `type` and may set any `PointSpec` field plus `counter` (a cumulative register such
as kWh or m³) and `max_rate_per_h` (the fastest a counter can plausibly climb). Installers pick a
profile by file name (`profile = "eastron_sdm120"`) and override fields per point in their config.

A profile whose map could not be checked against the manufacturer's document says so in an
`[unverified]` table: a point name (its address or meaning) or `function` (the profile's default
function code, so every point that inherits it) → what is unverified and why. `lintel modbus
profiles` shows those points as unverified, with the reasons.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pydantic import Field, ValidationError

from drivers.modbus.registers import DataType, Function, Order, PointSpec
from gateway.core.config_base import StrictModel


class PointFields(StrictModel):
    """Every key a point may set; unset keys are inherited (profile point, then profile defaults)."""

    function: Function | None = Field(
        None, description="1 coils, 2 discrete inputs, 3 holding registers, 4 input registers."
    )
    address: int | None = Field(None, ge=0, le=0xFFFF, description="Protocol address, 0-65535.")
    type: DataType | None = None
    word_order: Order | None = None
    byte_order: Order | None = None
    scale: float | None = None
    offset: float | None = None
    bit: int | None = Field(None, ge=0, le=15, description="Bit of a `bit` point, 0 = least significant.")
    length: int | None = Field(None, ge=1, le=64, description="Registers of a `string` point.")
    counter: bool | None = Field(None, description="A cumulative register (kWh, m³).")
    max_rate_per_h: float | None = Field(
        None, gt=0, description="Fastest plausible climb of a counter per hour, in its unit."
    )
    interval_s: float | None = Field(None, gt=0, le=86_400, description="Poll interval of this point.")


class ProfileHeader(StrictModel):
    title: str
    document: str = Field(min_length=20, description="The manufacturer document the map comes from.")
    function: Function = 3
    type: DataType = "uint16"


class ProfileFile(StrictModel):
    profile: ProfileHeader
    points: dict[str, PointFields]
    unverified: dict[str, str] = Field(
        default_factory=dict, description="Point name or `function` → what is unverified and why."
    )


@dataclass(frozen=True, slots=True)
class MeterPoint:
    """A point ready to poll: where and how to decode it, and how to treat its value."""

    spec: PointSpec
    counter: bool = False
    max_rate_per_h: float | None = None
    interval_s: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    title: str
    document: str
    function: Function
    type: DataType
    points: dict[str, PointFields]
    unverified: dict[str, str]

    def unverified_reasons(self, point: str) -> list[str]:
        """Why `point` is unverified: its own entry, and the default function code's if it
        inherits it; empty for a point checked against the manufacturer's document."""
        reasons = [self.unverified[point]] if point in self.unverified else []
        if "function" in self.unverified and self.points[point].function is None:
            reasons.append(self.unverified["function"])
        return reasons


_SPEC_KEYS = ("function", "address", "type", "word_order", "byte_order", "scale", "offset", "bit", "length")


def build_point(name: str, *layers: PointFields, defaults: dict[str, Any] | None = None) -> MeterPoint:
    """Merge layers (later wins) over defaults into a MeterPoint; ValueError says what is missing."""
    merged: dict[str, Any] = dict(defaults or {})
    for layer in layers:
        merged.update({k: v for k, v in layer.model_dump().items() if v is not None})
    missing = [k for k in ("function", "address", "type") if k not in merged]
    if missing:
        raise ValueError(f"point {name!r} needs {', '.join(missing)}")
    spec = PointSpec(name=name, **{k: merged[k] for k in _SPEC_KEYS if k in merged})
    return MeterPoint(
        spec,
        counter=bool(merged.get("counter", False)),
        max_rate_per_h=merged.get("max_rate_per_h"),
        interval_s=merged.get("interval_s"),
    )


@functools.cache
def available() -> dict[str, Profile]:
    """Every shipped profile by name. A malformed profile file is a bug in the package: it raises."""
    out: dict[str, Profile] = {}
    folder = resources.files("drivers.modbus") / "profiles"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        name = entry.name.removesuffix(".toml")
        try:
            parsed = ProfileFile.model_validate(tomllib.loads(entry.read_text("utf-8")))
        except (tomllib.TOMLDecodeError, ValidationError) as exc:
            raise RuntimeError(f"meter profile {entry.name} is broken: {exc}") from exc
        header = parsed.profile
        strange = set(parsed.unverified) - set(parsed.points) - {"function"}
        if strange:
            raise RuntimeError(f"meter profile {entry.name}: [unverified] names no point {sorted(strange)}")
        profile = Profile(
            name,
            header.title,
            header.document,
            header.function,
            header.type,
            parsed.points,
            parsed.unverified,
        )
        for point_name in profile.points:  # every point must build on its own
            build_point(point_name, profile.points[point_name], defaults=profile_defaults(profile))
        out[name] = profile
    return out


def profile_defaults(profile: Profile) -> dict[str, Any]:
    return {"function": profile.function, "type": profile.type}


def profile_points(name: str) -> list[MeterPoint]:
    """All points of a shipped profile, as the profile defines them."""
    profile = available()[name]
    return [build_point(n, f, defaults=profile_defaults(profile)) for n, f in profile.points.items()]
