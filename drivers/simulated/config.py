"""Config of the `simulated` source type."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.core.config_base import SourceConfigBase


class SimulatedSourceConfig(SourceConfigBase):
    """A simulated device. `profile` picks what it pretends to be:

    - `electricity_meter`: cumulative `energy_import_kwh`, `power_w`, `voltage_v` (telemetry);
    - `water_meter`: cumulative `volume_m3`, `flow_m3h` (telemetry);
    - `door_sensor`: `door_opened` / `door_closed` events, `door_open` state, `battery_pct`;
      now and then a `door_forced` alarm;
    - `load`: `points` telemetry points per poll, for benchmarks and soak tests.
    """

    type: Literal["simulated"]
    profile: Literal["electricity_meter", "water_meter", "door_sensor", "load"] = "electricity_meter"
    interval_s: float = Field(1.0, gt=0, le=86_400, description="Seconds between polls.")
    points: int = Field(10, ge=1, le=100_000, description="Points per poll (profile `load` only).")
    seed: int = Field(0, description="Random seed, so a demo run can be replayed.")
    alarm_probability: float = Field(
        0.0, ge=0, le=1, description="Chance per poll of an alarm-class event (door_sensor)."
    )
    fail_after_polls: int = Field(
        0, ge=0, description="Simulate a device dropping off the bus after this many polls (0 = never)."
    )
