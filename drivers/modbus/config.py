"""Config of the `modbus` source type: one entry per physical bus, its meters listed inside it.

    [[sources]]
    type = "modbus"
    id = "bus-basement"
    endpoint = "rtu:///dev/serial/by-id/usb-FTDI_FT232R-if00-port0?baudrate=9600"

    [[sources.meters]]
    id = "meter-101"
    unit = 1
    profile = "eastron_sdm120"
    read = ["energy_import_kwh", "power_w", "voltage_v"]
    points.energy_import_kwh = { interval_s = 60 }

A bus is one source because it is one queue: its meters share the line and its scheduler.
Meter ids are the source ids of their readings and are unique across the whole config.
"""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import Field, field_validator, model_validator

from drivers.modbus.endpoint import EXAMPLES, Endpoint, EndpointError, parse_endpoint
from drivers.modbus.profiles import MeterPoint, PointFields, available, build_point, profile_defaults
from gateway.core.config_base import Identifier, SourceConfigBase, StrictModel, custom_error


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    listing = ", ".join(f'"{c}"' for c in choices)
    return f'"{close[0]}" (did you mean it?)' if close else f"one of: {listing}"


class MeterConfig(StrictModel):
    id: Identifier = Field(description="Source id of this meter's readings; unique in the config.")
    unit: int = Field(description="Modbus unit (slave) id: 1-247 on RS-485, up to 255 on TCP.")
    profile: str | None = Field(None, description="A shipped meter profile (see `lintel modbus profiles`).")
    read: list[str] | None = Field(None, description="Points to poll; default every point of the profile.")
    points: dict[str, PointFields] = Field(
        default_factory=dict, description="Per-point overrides, or new points with function/address/type."
    )
    interval_s: float | None = Field(None, gt=0, le=86_400, description="Poll interval (default: the bus's).")
    timeout_ms: int | None = Field(None, ge=20, le=10_000, description="Answer timeout (default: the bus's).")
    retries: int | None = Field(None, ge=0, le=5, description="Retries per request (default: the bus's).")
    max_gap: int | None = Field(
        None, ge=0, le=100, description="Unused registers a merged read may span (default: the bus's)."
    )
    enabled: bool = True

    @field_validator("unit")
    @classmethod
    def _unit_range(cls, value: int) -> int:
        if not 1 <= value <= 255:
            # The bus narrows it to 1-247 on an RS-485 line; say both here, the bus is not known yet.
            raise custom_error(
                "no such Modbus unit id", "1-247 on an RS-485 line (rtu://, rtu+tcp://), 1-255 on Modbus TCP"
            )
        return value

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        if value is not None and value not in available():
            raise custom_error("unknown meter profile", _did_you_mean(value, sorted(available())))
        return value

    def _point_names(self) -> list[str]:
        """Every point this meter knows: the profile's, then the ones the config adds."""
        known = list(available()[self.profile].points) if self.profile else []
        return known + [n for n in self.points if n not in known]

    @model_validator(mode="after")
    def _points_resolve(self) -> MeterConfig:
        names = self._point_names()
        for name in self.read or []:
            if name not in names:
                raise custom_error(
                    "no such point in the profile or in points",
                    _did_you_mean(name, names),
                    key="read",
                    got=f'"{name}"',
                )
        if not names:
            raise custom_error(
                "a meter needs a profile or points", 'profile = "eastron_sdm120" or [points.x] tables'
            )
        for name in self.points:
            try:
                self._build(name)
            except ValueError as exc:
                raise custom_error(
                    str(exc).removeprefix(f"{name}: "),
                    "function, address and type that fit together",
                    key=f"points.{name}",
                ) from None
        return self

    def _build(self, name: str) -> MeterPoint:
        layers = []
        defaults = None
        if self.profile and name in available()[self.profile].points:
            profile = available()[self.profile]
            layers.append(profile.points[name])
            defaults = profile_defaults(profile)
        if name in self.points:
            layers.append(self.points[name])
        return build_point(name, *layers, defaults=defaults)

    def resolved_points(self) -> list[MeterPoint]:
        """The points this meter polls, overrides applied."""
        names = self.read if self.read is not None else self._point_names()
        return [self._build(n) for n in names]


class ModbusBusConfig(SourceConfigBase):
    """A physical Modbus bus (serial port, TCP gateway or serial server) and the meters on it."""

    type: Literal["modbus"]
    endpoint: str = Field(description=f"Where the bus is: {EXAMPLES}.")
    interval_s: float = Field(10.0, gt=0, le=86_400, description="Default poll interval of the meters.")
    timeout_ms: int = Field(500, ge=20, le=10_000, description="Default answer timeout per request.")
    retries: int = Field(1, ge=0, le=5, description="Default retries of a failed request.")
    turnaround_ms: float = Field(
        5.0, ge=0, le=1000, description="Extra silence after each answer, for slow RS-485 transceivers."
    )
    max_gap: int = Field(10, ge=0, le=100, description="Unused registers a merged read may span.")
    offline_after: int = Field(
        2, ge=1, le=100, description="Failed polls in a row before a meter is reported offline."
    )
    breaker_max_s: float = Field(
        300.0, ge=1, le=86_400, description="Longest wait between probes of a dead meter."
    )
    max_inflight: int = Field(
        1,
        ge=1,
        le=16,
        description="Requests to different meters waiting for their answers at once (Modbus TCP only; "
        "1 for gateways that serialise, as most RS-485 gateways do).",
    )
    meters: list[MeterConfig] = Field(min_length=1, description="The meters on this bus.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        try:
            parse_endpoint(value)
        except EndpointError as exc:
            raise custom_error(f"bad Modbus endpoint: {exc}", EXAMPLES) from None
        return value

    @model_validator(mode="after")
    def _inflight_needs_tcp(self) -> ModbusBusConfig:
        if self.max_inflight > 1 and self.parsed_endpoint.kind != "tcp":
            raise custom_error(
                "several requests in flight need Modbus TCP (an RS-485 line carries one at a time)",
                "max_inflight = 1, or a tcp:// endpoint",
                key="max_inflight",
                got=str(self.max_inflight),
            )
        return self

    @model_validator(mode="after")
    def _meters_unique(self) -> ModbusBusConfig:
        ids: dict[str, int] = {}
        units: dict[int, int] = {}
        serial = self.parsed_endpoint.serial_line
        for index, meter in enumerate(self.meters):
            if meter.id in ids:
                raise custom_error(
                    "duplicate meter id",
                    f"an id not used by meters[{ids[meter.id]}]",
                    key=f"meters[{index}].id",
                    got=f'"{meter.id}"',
                )
            if meter.unit in units:
                raise custom_error(
                    "two meters with one unit id on one bus",
                    f"a unit id not used by meters[{units[meter.unit]}]"
                    " (set the meter's address on its display)",
                    key=f"meters[{index}].unit",
                    got=str(meter.unit),
                )
            if serial and meter.unit > 247:
                raise custom_error(
                    "unit ids on RS-485 are 1-247",
                    "a number 1-247",
                    key=f"meters[{index}].unit",
                    got=str(meter.unit),
                )
            ids[meter.id] = index
            units[meter.unit] = index
        return self

    @property
    def parsed_endpoint(self) -> Endpoint:
        return parse_endpoint(self.endpoint)

    def device_ids(self) -> list[tuple[str, str]]:
        return [("id", self.id)] + [(f"meters[{i}].id", m.id) for i, m in enumerate(self.meters)]
