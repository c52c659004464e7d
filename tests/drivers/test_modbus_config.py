# ruff: noqa: E501 - the expected messages are quoted whole, as an installer reads them
"""Modbus config mistakes name the key, the value and the fix; counters guard consumption figures."""

from __future__ import annotations

import pytest

from drivers.modbus.counters import CounterGuard
from gateway.config import parse_config
from gateway.core import ConfigError

HEAD = '[gateway]\nid = "gw1"\nsite = "site-a"\n'


def problems(sources: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config((HEAD + sources).encode(), "t.toml")
    return [str(p) for p in info.value.problems]


def bus(meters: str, endpoint: str = "tcp://10.0.0.5:502") -> str:
    return f'[[sources]]\nid = "bus-1"\ntype = "modbus"\nendpoint = "{endpoint}"\n{meters}'


METER = '[[sources.meters]]\nid = "m1"\nunit = 1\nprofile = "eastron_sdm120"\n'


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            bus('[[sources.meters]]\nid = "m1"\nunit = 1\nprofile = "eastron_sdm12"\n'),
            'sources[0].meters[0].profile: unknown meter profile (got "eastron_sdm12"); expected "eastron_sdm120" (did you mean it?)',
        ),
        (
            bus(METER + 'read = ["power_kw"]\n'),
            'sources[0].meters[0].read: no such point in the profile or in points (got "power_kw"); expected "power_w" (did you mean it?)',
        ),
        (
            bus(METER + '[[sources.meters]]\nid = "m2"\nunit = 1\nprofile = "generic_water"\n'),
            "sources[0].meters[1].unit: two meters with one unit id on one bus (got 1); expected a unit id not used by meters[0] (set the meter's address on its display)",
        ),
        (
            bus(METER, endpoint="rtu://dev/ttyUSB0"),
            'sources[0].endpoint: bad Modbus endpoint: a serial endpoint is rtu:///dev/... (three slashes, absolute device path) (got "rtu://dev/ttyUSB0"); expected rtu:///dev/serial/by-id/...?baudrate=9600&parity=N&stopbits=1, tcp://host:502 or rtu+tcp://host:4001',
        ),
        (
            bus(METER, endpoint="rtu:///dev/ttyUSB0?baudrate=9601"),
            'sources[0].endpoint: bad Modbus endpoint: baudrate 9601 is not one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200 (got "rtu:///dev/ttyUSB0?baudrate=9601"); expected rtu:///dev/serial/by-id/...?baudrate=9600&parity=N&stopbits=1, tcp://host:502 or rtu+tcp://host:4001',
        ),
        (
            bus(
                '[[sources.meters]]\nid = "m1"\nunit = 1\n[sources.meters.points.relay]\nfunction = 3\naddress = 0\ntype = "bool"\n'
            ),
            "sources[0].meters[0].points.relay: type bool goes with functions 1 and 2 (coils, discrete inputs) only; expected function, address and type that fit together",
        ),
        (
            bus(METER) + '[[sources]]\nid = "m1"\ntype = "simulated"\n',
            'sources[1].id: duplicate source id (got "m1"); expected an id not already used by sources[0].meters[0].id',
        ),
        (
            bus(
                '[[sources.meters]]\nid = "m1"\nunit = 250\nprofile = "eastron_sdm120"\n',
                endpoint="rtu:///dev/ttyUSB0",
            ),
            "sources[0].meters[0].unit: unit ids on RS-485 are 1-247 (got 250); expected a number 1-247",
        ),
        (
            bus("max_inflight = 4\n" + METER, endpoint="rtu:///dev/ttyUSB0"),
            "sources[0].max_inflight: several requests in flight need Modbus TCP (an RS-485 line carries "
            "one at a time) (got 4); expected max_inflight = 1, or a tcp:// endpoint",
        ),
    ],
    ids=[
        "unknown profile",
        "unknown point",
        "duplicate unit",
        "endpoint slashes",
        "baudrate",
        "bool on registers",
        "meter id clash",
        "unit range",
        "max_inflight on a serial line",
    ],
)
def test_bad_modbus_config_names_key_value_and_fix(toml: str, expected: str) -> None:
    assert expected in problems(toml)


def test_point_override_and_custom_point() -> None:
    loaded = parse_config(
        (
            HEAD
            + bus(
                METER
                + 'read = ["power_w", "tariff"]\n'
                + '[sources.meters.points.power_w]\nword_order = "little"\ninterval_s = 2\n'
                + '[sources.meters.points.tariff]\nfunction = 3\naddress = 0x0F00\ntype = "uint16"\n'
            )
        ).encode(),
        "t.toml",
    )
    meter = loaded.config.sources[0].meters[0]  # type: ignore[union-attr]
    points = {p.name: p for p in meter.resolved_points()}
    assert points["power_w"].spec.word_order == "little" and points["power_w"].spec.address == 0x000C
    assert points["power_w"].interval_s == 2
    assert points["tariff"].spec.function == 3 and points["tariff"].spec.address == 0x0F00


def test_counter_guard() -> None:
    guard = CounterGuard(max_rate_per_h=15)
    hour = 3_600_000
    assert guard.check(100.0, 0).publish
    assert guard.check(110.0, hour).publish  # 10 kWh in an hour: fine
    v = guard.check(5.0, 2 * hour)
    assert (v.publish, v.event) == (True, "counter_reset")
    v = guard.check(900.0, 2 * hour + 60_000)
    assert (v.publish, v.event) == (False, "implausible_jump")
    # The new level holds for three more readings: accepted as a replaced meter's baseline.
    assert not guard.check(900.1, 2 * hour + 120_000).publish
    assert not guard.check(900.2, 2 * hour + 180_000).publish
    v = guard.check(900.3, 2 * hour + 240_000)
    assert (v.publish, v.event, v.attrs and v.attrs["reason"]) == (True, "counter_reset", "rebased")
    assert guard.check(900.35, 2 * hour + 300_000).publish
