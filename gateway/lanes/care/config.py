"""`[care]`: the care watch for residents living alone, one `[[care.households]]` table per home.

Limits set under `[care]` are the defaults; a household may override any of them. Every device a
household names must exist among the `[[sources]]` ids (checked where the whole config is known,
in `gateway.config.model`).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from gateway.core.config_base import Identifier, StrictModel, custom_error
from gateway.core.references import DEVICE, SOURCE_KINDS, Named, Ref

HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def minutes_of_day(text: str) -> int:
    match = HHMM.match(text)
    assert match is not None
    return int(match.group(1)) * 60 + int(match.group(2))


def _check_hhmm(value: str) -> str:
    if not HHMM.match(value):
        raise custom_error("not a time of day", '"HH:MM" on a 24-hour clock, e.g. "07:00"')
    return value


Hours = Annotated[float, Field(gt=0, le=24 * 14)]


class CareLimits(StrictModel):
    """Limits a household can override (None here: inherit `[care]`'s value)."""

    no_activity_day_h: Hours | None = Field(
        None, description="Hours without any activity before care_no_activity (silence within a day)."
    )
    no_activity_night_h: Hours | None = Field(
        None, description="Same for a silence that spans a night (people sleep: usually longer)."
    )
    door_inactive_day_h: Hours | None = Field(
        None, description="Daytime hours without the front door opening before care_door_inactive."
    )
    continuous_water_min: Annotated[float, Field(gt=0, le=24 * 60)] | None = Field(
        None, description="Minutes of uninterrupted water use before care_continuous_water."
    )
    standby_w: Annotated[float, Field(ge=0, le=100_000)] | None = Field(
        None, description="Electricity above this average power (W) counts as activity."
    )
    pattern_break: bool | None = Field(
        None, description="Heuristic: alarm when today's activity is far below the learned pattern."
    )


class HouseholdConfig(CareLimits):
    id: Identifier = Field(description="Household id (e.g. the flat number); appears in care events.")
    door: Identifier | None = Field(None, description="Id of the front door sensor.")
    water_meter: Identifier | None = Field(None, description="Id of the household's water meter.")
    water_point: Identifier = Field("volume_m3", description="The water meter's cumulative volume point.")
    electricity_meter: Identifier | None = Field(None, description="Id of the household's electricity meter.")
    energy_point: Identifier = Field(
        "energy_import_kwh", description="The electricity meter's cumulative energy point (kWh)."
    )
    power_point: Identifier | None = Field(
        "power_w", description="The electricity meter's power point (W), if it has one."
    )
    enabled: bool = Field(True, description="false keeps the entry but does not watch the household.")

    @model_validator(mode="after")
    def _has_a_signal(self) -> HouseholdConfig:
        if self.door is None and self.water_meter is None and self.electricity_meter is None:
            raise custom_error(
                "a household needs at least one activity signal",
                "door, water_meter and/or electricity_meter set to device ids from [[sources]]",
                key="door",
            )
        return self


class CareSection(CareLimits):
    day_starts: str = Field("07:00", description="Local time the day starts (HH:MM).")
    night_starts: str = Field("22:00", description="Local time the night starts (HH:MM).")
    no_activity_day_h: Hours = 12.0
    no_activity_night_h: Hours = 16.0
    door_inactive_day_h: Hours = 24.0
    continuous_water_min: Annotated[float, Field(gt=0, le=24 * 60)] = 45.0
    standby_w: Annotated[float, Field(ge=0, le=100_000)] = 80.0
    pattern_break: bool = False
    water_pause_s: float = Field(
        180, gt=0, le=3600, description="Water use ends after this long without the volume rising."
    )
    data_stale_h: Hours = Field(2.0, description="A meter silent this long counts as missing data.")
    pattern_min_days: int = Field(7, ge=2, le=60, description="Days of history before the heuristic speaks.")
    pattern_days: int = Field(28, ge=2, le=90, description="Days of history the pattern is learned from.")
    pattern_ratio: float = Field(
        0.3, gt=0, lt=1, description="Alarm when today's activity is below this share of the usual."
    )
    pattern_min_active_min: float = Field(
        30, gt=0, description="The usual activity (active minutes so far today) must reach this first."
    )
    renotify_min: float = Field(
        60, ge=0, description="Minutes between reminders of an open, unacknowledged care alarm (0: never)."
    )
    state_save_interval_s: float = Field(
        300, ge=1, le=3600, description="How often timers are saved (alarms are saved at once)."
    )
    households: list[HouseholdConfig] = Field(default_factory=list)

    _hhmm_day = field_validator("day_starts")(_check_hhmm)
    _hhmm_night = field_validator("night_starts")(_check_hhmm)

    @model_validator(mode="after")
    def _consistent(self) -> CareSection:
        if self.day_starts == self.night_starts:
            raise custom_error(
                "day and night start at the same time", "different HH:MM values", key="night_starts"
            )
        seen: set[str] = set()
        for index, household in enumerate(self.households):
            if household.id in seen:
                raise custom_error(
                    "duplicate household id",
                    "an id used once",
                    key=f"households[{index}].id",
                    got=f'"{household.id}"',
                )
            seen.add(household.id)
        if self.pattern_min_days > self.pattern_days:
            raise custom_error(
                "pattern_min_days is above pattern_days",
                "pattern_min_days <= pattern_days",
                key="pattern_min_days",
            )
        return self

    def limit(self, household: HouseholdConfig, name: str) -> float | bool:
        """A household's value for a limit, falling back to this section's."""
        own = getattr(household, name)
        return own if own is not None else getattr(self, name)


def names(section: CareSection) -> list[Named]:
    """Household ids: unique among the gateway's ids (devices, doors, fire lanes, entrances)."""
    return [
        Named(f"care.households[{i}].id", h.id, "household", problem="household id is also used elsewhere")
        for i, h in enumerate(section.households)
    ]


def references(section: CareSection) -> list[Ref]:
    """The devices each household is watched through."""
    return [
        Ref(f"care.households[{i}].{key}", name, DEVICE, "unknown device", SOURCE_KINDS[DEVICE])
        for i, h in enumerate(section.households)
        for key in ("door", "water_meter", "electricity_meter")
        if (name := getattr(h, key)) is not None
    ]
