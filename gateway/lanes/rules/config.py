"""`[[rules]]`: local alarm rules as data, not a language. Three types:

- `threshold`: a reading above (or below) a limit for at least `for_s` opens an alarm; it clears
  only past `clear_at` (hysteresis), so a value hovering at the limit does not flap;
- `door_left_open`: a door open longer than `after_s` opens an alarm, closing it resolves it;
- `deadband`: noisy telemetry is passed on only when it moved by `deadband` or `deadband_pct` of
  the last value sent (the larger of the two), at most every `min_interval_s`, and at least every
  `max_interval_s`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from gateway.core.config_base import Identifier, StrictModel, custom_error
from gateway.core.references import DEVICE, SOURCE_KINDS, Named, Ref


class RuleBase(StrictModel):
    id: Identifier = Field(description="Rule id; appears in the alarms it raises.")
    enabled: bool = Field(True, description="false keeps the rule but does not apply it.")


class ThresholdRule(RuleBase):
    type: Literal["threshold"]
    source: Identifier = Field(description="Device id whose reading is watched.")
    point: Identifier = Field(description="The reading's point, e.g. temperature_c.")
    above: float | None = Field(None, description="Alarm when the value is above this...")
    below: float | None = Field(None, description="...or below this (exactly one of the two).")
    clear_at: float | None = Field(None, description="The alarm clears past this value (default: the limit).")
    for_s: float = Field(0, ge=0, le=7 * 86_400, description="The condition must hold this long first.")
    kind: Identifier = Field("threshold_exceeded", description="Event kind of the alarm.")
    renotify_min: float = Field(0, ge=0, description="Reminder interval while open and not acknowledged.")

    @model_validator(mode="after")
    def _one_limit(self) -> ThresholdRule:
        if (self.above is None) == (self.below is None):
            raise custom_error(
                "a threshold rule needs exactly one limit", "either above = N or below = N", key="above"
            )
        if self.above is not None and self.clear_at is not None and self.clear_at > self.above:
            raise custom_error(
                "clear_at must not be above the limit",
                f"clear_at <= {self.above:g}",
                key="clear_at",
                got=f"{self.clear_at:g}",
            )
        if self.below is not None and self.clear_at is not None and self.clear_at < self.below:
            raise custom_error(
                "clear_at must not be below the limit",
                f"clear_at >= {self.below:g}",
                key="clear_at",
                got=f"{self.clear_at:g}",
            )
        return self


class DoorLeftOpenRule(RuleBase):
    type: Literal["door_left_open"]
    sources: Annotated[list[Identifier], Field(min_length=1)] = Field(description="Door sensor ids.")
    after_s: float = Field(300, gt=0, le=7 * 86_400, description="Open longer than this -> alarm.")
    renotify_min: float = Field(0, ge=0, description="Reminder interval while open and not acknowledged.")


class DeadbandRule(RuleBase):
    type: Literal["deadband"]
    source: Identifier = Field(description="Device id whose readings are thinned out.")
    points: Annotated[list[Identifier], Field(min_length=1)] = Field(
        description="Points the rule applies to."
    )
    deadband: float = Field(0, ge=0, description="Pass a value only when it moved at least this much...")
    deadband_pct: float = Field(0, ge=0, le=100, description="...or this percentage of the last value sent.")
    min_interval_s: float = Field(0, ge=0, description="Never more often than this (rate limit).")
    max_interval_s: float = Field(300, gt=0, description="Pass a value at least this often (heartbeat).")

    @model_validator(mode="after")
    def _sane(self) -> DeadbandRule:
        if self.min_interval_s >= self.max_interval_s:
            raise custom_error(
                "min_interval_s must be below max_interval_s",
                "min_interval_s < max_interval_s",
                key="min_interval_s",
                got=f"{self.min_interval_s:g}",
            )
        return self


Rule = Annotated[ThresholdRule | DoorLeftOpenRule | DeadbandRule, Field(discriminator="type")]


def names(rules: list[Rule]) -> list[Named]:
    """Rule ids: unique among the rules (their own space: a rule may share a device's id)."""
    return [Named(f"rules[{i}].id", r.id, "rule", "rules", "duplicate rule id") for i, r in enumerate(rules)]


def references(rules: list[Rule]) -> list[Ref]:
    """The devices each rule watches."""
    refs: list[Ref] = []
    for i, rule in enumerate(rules):
        named: list[tuple[str, str]] = []
        if isinstance(rule, ThresholdRule | DeadbandRule):
            named = [("source", rule.source)]
        elif isinstance(rule, DoorLeftOpenRule):
            named = [(f"sources[{j}]", s) for j, s in enumerate(rule.sources)]
        refs += [
            Ref(f"rules[{i}].{key}", n, DEVICE, "unknown device", SOURCE_KINDS[DEVICE]) for key, n in named
        ]
    return refs
