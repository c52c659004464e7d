"""Per-device health from the real drivers: a dead Modbus meter behind a real pymodbus server, a BLE
sensor whose bindkey is wrong on a simulated radio of real advert bytes, and the rounding contract."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from drivers.ble.config import BleConfig
from drivers.ble.simulator import SimulatedRadio, SimulatedSensor
from drivers.ble.source import BleSource
from drivers.modbus.simulator import MeterServer, SimulatedMeter
from drivers.modbus.source import ModbusBusSource
from gateway.core import Reading, Record, SourceContext, SystemClock
from gateway.core.devices import DeviceReport, DeviceReporter, point_value, unit_of
from tests.support.buses import tcp_bus


async def run_until(
    source: ModbusBusSource | BleSource, sid: str, done: Callable[[list[DeviceReport]], bool]
) -> tuple[list[DeviceReport], list[Record]]:
    """Run `source` (as the daemon does) until its device reports satisfy `done` (at most 20 s)."""
    out: list[Record] = []
    ctx = SourceContext(sid, SystemClock(), lambda r: out.append(r) or True)
    task = asyncio.create_task(source.run(ctx))
    try:
        async with asyncio.timeout(20):
            while not done(source.device_reports()):
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return source.device_reports(), out


def test_a_dead_meter_is_offline_since_its_event_with_its_errors_and_the_live_one_rounded() -> None:
    async def main() -> tuple[list[DeviceReport], list[Record]]:
        server = MeterServer([SimulatedMeter(1, "eastron_sdm120", seed=3)])
        port = await server.start_tcp()
        meters = [
            {"id": "live", "unit": 1, "profile": "eastron_sdm120"},
            {"id": "dead", "unit": 7, "profile": "eastron_sdm120"},
        ]
        cfg = tcp_bus(port, "bus-a", meters, interval_s=0.2, timeout_ms=100, retries=0)
        source = ModbusBusSource(cfg)
        assert isinstance(source, DeviceReporter)
        try:
            return await run_until(
                source,
                "bus-a",
                lambda rs: rs[1].online is False and rs[0].online is True and bool(rs[0].points),
            )
        finally:
            await server.stop()

    reports, records = asyncio.run(main())
    live, dead = reports
    assert (live.device_id, live.source_id, live.kind) == ("live", "bus-a", "meter")
    assert live.errors == 0 and live.last_seen_ms is not None and live.offline_since_ms is None
    # Every point is its latest reading, rounded to the precision its unit means, with that unit.
    latest = {r.point: r.value for r in records if isinstance(r, Reading) and r.source_id == "live"}
    assert {p.name for p in live.points} == set(latest)
    for p in live.points:
        assert p == point_value(p.name, latest[p.name])
    by_name = {p.name: p for p in live.points}
    assert by_name["power_w"].unit == "W" and isinstance(by_name["power_w"].value, int)
    assert by_name["energy_import_kwh"].unit == "kWh"
    assert by_name["energy_import_kwh"].value == round(float(latest["energy_import_kwh"]), 2)
    # The dead meter: offline since its device_offline event, its failed exchanges counted by the
    # driver by reason (a TCP gateway answers for a dead unit: exception 11, "target failed to respond").
    offline = [r for r in records if r.source_id == "dead" and getattr(r, "kind", "") == "device_offline"]
    assert len(offline) == 1
    assert dead.online is False and dead.offline_since_ms == offline[0].ts_ms
    assert dead.counters.get("exception", 0) >= 2 and dead.errors == sum(dead.counters.values())
    assert dead.last_seen_ms is None and dead.points == () and dead.last_error


def test_a_sensor_with_the_wrong_bindkey_counts_decrypt_failures_and_the_right_one_none() -> None:
    right = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
    wrong = bytes.fromhex("017e52d2684779298709b117c0a75a7b")
    config = BleConfig.model_validate(
        {
            "type": "ble",
            "id": "ble-hall",
            "backend": "simulated",
            "sensors": [
                {"id": "door-good", "address": "54:48:E6:8F:80:A5", "bindkey": right.hex()},
                {"id": "door-bad", "address": "54:48:E6:8F:80:A6", "bindkey": wrong.hex()},
            ],
        }
    )
    radio = SimulatedRadio(
        [
            SimulatedSensor("54:48:E6:8F:80:A5", "SBDW-002C", right, name="good", counter=100),
            SimulatedSensor("54:48:E6:8F:80:A6", "SBDW-002C", right, name="bad", counter=100),
        ],
        mean_change_s=0.05,
        repeats=1,
    )
    source = BleSource(config, scanner=radio)

    def enough(reports: list[DeviceReport]) -> bool:
        return len(reports) == 2 and all(r.counters.get("adverts", 0) >= 5 for r in reports)

    reports, records = asyncio.run(run_until(source, "ble-hall", enough))
    good, bad = reports
    assert (good.device_id, good.kind, good.online) == ("door-good", "sensor", True)
    assert good.counters["decrypt_failed"] == 0 and good.errors == 0
    door = [
        r.value
        for r in records
        if isinstance(r, Reading) and r.source_id == "door-good" and r.point == "door_open"
    ]
    assert [p.value for p in good.points if p.name == "door_open"] == door[-1:]
    assert bad.counters["decrypt_failed"] == bad.counters["adverts"] >= 5 and bad.errors >= 5
    assert not any(p.name == "door_open" for p in bad.points)  # nothing it said was applied
    assert bad.last_seen_ms is not None  # an undecryptable advert is still a sign of life


@pytest.mark.parametrize(
    ("point", "value", "shown", "unit"),
    [
        ("energy_import_kwh", 1537.4567, 1537.46, "kWh"),
        ("power_w", 1020.7, 1021, "W"),
        ("voltage_l1_v", 229.84, 229.8, "V"),
        ("frequency_hz", 49.99819, 50.0, "Hz"),
        ("volume_m3", 141.26789, 141.268, "m³"),
        ("flow_m3h", 0.6244, 0.624, "m³/h"),
        ("power_factor_l2", 0.98765, 0.99, ""),
        ("door_open", True, True, ""),
        ("firmware", "1.2.3", "1.2.3", ""),
    ],
)
def test_values_are_rounded_to_the_precision_their_unit_means(
    point: str, value: float | bool | str, shown: float | bool | str, unit: str
) -> None:
    got = point_value(point, value)
    assert got.value == shown and type(got.value) is type(shown) and got.unit == unit == unit_of(point)[0]
