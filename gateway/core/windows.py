"""Weekly time windows in the gateway's local time (`[[fire_lanes.exempt]]`, a face entrance's
hours): `to` before `from` spans midnight."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator

from gateway.core.config_base import StrictModel, custom_error

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def hhmm(value: str) -> str:
    try:
        dt.time.fromisoformat(value)
    except ValueError:
        raise custom_error("not a time of day", 'HH:MM, e.g. "07:30"') from None
    return value


class Window(StrictModel):
    """A weekly time window in the gateway's time zone; `to` before `from` spans midnight."""

    days: list[Day] = Field(default_factory=lambda: list(DAYS), description="Days the window starts on.")
    start: str = Field(alias="from", description="HH:MM")
    end: str = Field(alias="to", description="HH:MM")

    _check_start = field_validator("start")(hhmm)
    _check_end = field_validator("end")(hhmm)

    def contains(self, local: dt.datetime) -> bool:
        start, end = dt.time.fromisoformat(self.start), dt.time.fromisoformat(self.end)
        now, today = local.time(), DAYS[local.weekday()]
        yesterday = DAYS[(local.weekday() - 1) % 7]
        if start <= end:
            return today in self.days and start <= now < end
        return (today in self.days and now >= start) or (yesterday in self.days and now < end)
