"""The scanner watchdog: pure state machine, then the source driving a fake scanner that stalls
and fails the way BlueZ does (org.bluez.Error.InProgress), then recovers."""

from __future__ import annotations

import asyncio

import pytest

from drivers.ble import source as ble_source
from drivers.ble.adverts import Advert
from drivers.ble.config import BleConfig
from drivers.ble.scanner import OnAdvert, ScannerError
from drivers.ble.simulator import SimulatedSensor
from drivers.ble.source import BleSource
from drivers.ble.watchdog import FAILURES_BEFORE_RESET, ScannerWatchdog
from gateway.core import Event, Record, SourceContext, SystemClock


def test_silence_restarts_then_resets_then_alarms_once_and_recovers() -> None:
    w = ScannerWatchdog(silence_s=60, max_resets=2)
    w.started(0)
    assert w.check(59) is None
    assert w.check(60).kind == "restart"  # type: ignore[union-attr]
    w.started(61)
    steps = [w.check(61 + 60 * k) for k in range(1, 5)]
    assert [s.kind for s in steps if s] == ["reset", "reset", "retry", "retry"]
    assert [s.alarm for s in steps if s] == [False, False, True, False]
    assert w.failed and w.advert(400) is True and not w.failed
    assert w.advert(401) is False


def test_start_failures_retry_then_reset() -> None:
    w = ScannerWatchdog(silence_s=60, max_resets=1, retry_s=2)
    steps = [w.start_failed("org.bluez.Error.InProgress") for _ in range(2 * FAILURES_BEFORE_RESET)]
    assert [s.kind for s in steps] == ["retry", "retry", "reset", "retry", "retry", "retry"]
    assert steps[-1].alarm is True and "InProgress" in steps[-1].reason


class FlakyScanner:
    """Our scanner interface, misbehaving on cue: fails to start, stalls, then works."""

    mode = "fake"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.starts = 0
        self.resets = 0
        self.on_advert: OnAdvert | None = None
        self.working = False

    async def start(self, on_advert: OnAdvert) -> None:
        self.starts += 1
        if self.failures > 0:
            self.failures -= 1
            raise ScannerError("[org.bluez.Error.InProgress] Operation already in progress")
        self.on_advert = on_advert

    async def stop(self) -> None:
        self.on_advert = None

    async def reset_adapter(self) -> None:
        self.resets += 1


async def _run_until(source: BleSource, records: list[Record], predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    ctx = SourceContext("ble-hall", SystemClock(), lambda r: records.append(r) or True)
    task = asyncio.create_task(source.run(ctx))
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_source_survives_a_broken_adapter_raises_one_alarm_and_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ble_source, "TICK_S", 0.02)
    config = BleConfig.model_validate(
        {"type": "ble", "id": "ble-hall", "sensors": [{"id": "door-1", "address": "3C:2E:F5:00:00:01"}]}
    )
    scanner = FlakyScanner(failures=12)
    source = BleSource(config, scanner)
    source.watchdog = ScannerWatchdog(silence_s=0.3, max_resets=2, retry_s=0.01, failed_retry_s=0.05)
    records: list[Record] = []
    door = SimulatedSensor("3C:2E:F5:00:00:01", "SBDW-002C")

    def advert_when_running() -> bool:
        if scanner.on_advert is not None:
            door.next_packet()
            scanner.on_advert(door.advert(asyncio.get_running_loop().time()))
        return any(isinstance(r, Event) and r.kind == "ble_adapter_recovered" for r in records)

    asyncio.run(_run_until(source, records, advert_when_running))
    events = [r for r in records if isinstance(r, Event)]
    alarms = [e for e in events if e.kind == "ble_adapter_failed"]
    assert (
        len(alarms) == 1 and alarms[0].severity == "alarm" and "InProgress" in str(alarms[0].attrs["error"])
    )
    assert scanner.resets == 2 and scanner.starts == 13
    assert events[-1].kind == "ble_adapter_recovered"
    assert any(getattr(r, "point", None) == "door_open" for r in records)


def test_silent_radio_restarts_the_scanner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ble_source, "TICK_S", 0.02)
    config = BleConfig.model_validate({"type": "ble", "id": "ble-hall"})
    scanner = FlakyScanner(failures=0)
    source = BleSource(config, scanner)
    source.watchdog = ScannerWatchdog(silence_s=0.2, max_resets=1, retry_s=0.01)
    asyncio.run(_run_until(source, [], lambda: scanner.resets >= 1, timeout=10))
    assert scanner.starts >= 2 and source.watchdog.restarts >= 1


def test_a_full_queue_drops_and_counts_without_blocking() -> None:
    config = BleConfig.model_validate(
        {
            "type": "ble",
            "id": "ble-hall",
            "queue_size": 16,
            "sensors": [{"id": "d", "address": "3C:2E:F5:00:00:01"}],
        }
    )
    source = BleSource(config, FlakyScanner(0))
    source._load_sensors(0.0)

    async def burst() -> None:
        source._queue = asyncio.Queue(config.queue_size)
        for i in range(100):
            source.on_advert(Advert("3C:2E:F5:00:00:01", -60, {}, {}, None, float(i)))
            source.on_advert(Advert("AA:AA:AA:AA:AA:AA", -60, {}, {}, None, float(i)))

    asyncio.run(burst())
    assert (source.counts["dropped"], source.counts["ignored"], source.counts["adverts"]) == (84, 100, 200)
