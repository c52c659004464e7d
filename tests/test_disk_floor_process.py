"""A real `lintel run` held at the disk floor (issue 28): its state folder is a small tmpfs filled to
below `min_free_disk_mb` but not full. Threshold alarms open and close all the while; every alarm
that arrives also gets its `alarm_resolved`, and no event is dropped: room for events comes only
from telemetry and state, and an event is never evicted to make room at the floor.

`LINTEL_FLOOR_S` sets how long the gateway stays at the floor (default 12 s in the suite; the issue's
figure is 90 s: `LINTEL_FLOOR_S=90 pytest tests/test_disk_floor_process.py`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from drivers.modbus.simulator import SimulatedMeter
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel, stop_and_show_log, wait_status
from tests.test_full_disk_process import config_text, small_state  # noqa: F401 (a fixture)

MIB = 1024 * 1024
FLOOR_MB = 5  # min_free_disk_mb
LEAVE_FREE = 3 * MIB  # below the floor, far from full
FLOOR_S = float(os.environ.get("LINTEL_FLOOR_S", "12"))


def leave_free(mnt: Path, filler: Path, free: int) -> None:
    """Grow `filler` until `free` bytes are left on the filesystem of `mnt`."""
    st = os.statvfs(mnt)
    extra = st.f_bavail * st.f_frsize - free
    if extra > 0:
        with open(filler, "ab") as fh:
            fh.write(b"\0" * extra)
            fh.flush()
            os.fsync(fh.fileno())


def events(c: Collector) -> list[dict[str, Any]]:
    return [m.payload for m in c.data() if m.payload.get("kind") in ("threshold_exceeded", "alarm_resolved")]


def test_at_the_disk_floor_every_alarm_gets_its_resolved_and_no_event_is_dropped(
    tmp_path: Path,
    small_state: Path,  # noqa: F811
    broker: Mosquitto,
) -> None:
    meter = SimulatedMeter(1, "eastron_sdm120")
    meter.pin("power_w", 50.0)
    modbus = ModbusThread([meter]).start()
    config = tmp_path / "lintel.toml"
    config.write_text(config_text(small_state, broker.port, modbus.port, min_free_disk_mb=FLOOR_MB))
    collector = Collector(broker.port, topic="lintel/#").start()
    proc = lintel("run", "-c", str(config))
    try:
        wait_status(config, lambda s: s["uplink"]["state"] == "connected", timeout=30)
        # the writer keeps a 1 MiB reserve file only with room for 4 of them: fill around it
        leave_free(small_state, small_state / "filler", LEAVE_FREE)
        wait_status(config, lambda s: s["outbox"]["at_disk_floor"], 20)
        at_floor_since = time.monotonic()
        episodes = 0
        while time.monotonic() < at_floor_since + FLOOR_S:  # the boiler overloads and recovers
            meter.pin("power_w", 2500.0)
            wait_status(config, lambda s: bool(s["alarms"]), 10)
            meter.pin("power_w", 50.0)
            wait_status(config, lambda s: not s["alarms"], 10)
            episodes += 1
        status = wait_status(config, lambda s: s["pid"] == proc.pid)
        assert status["outbox"]["at_disk_floor"], "the floor was left: the test would prove less"
        assert not status["outbox"]["disk_full"]
        assert collector.wait_for(lambda c: len(events(c)) >= 2 * episodes, 30), events(collector)
        got = events(collector)
        opened = {a["attrs"]["alarm_id"] for a in got if a["kind"] == "threshold_exceeded"}
        resolved = {a["attrs"]["alarm_id"] for a in got if a["kind"] == "alarm_resolved"}
        assert len(opened) == episodes >= 3
        assert resolved == opened, f"{len(opened - resolved)} alarms arrived without their alarm_resolved"
        dropped = wait_status(config, lambda s: s["pid"] == proc.pid)["outbox"]["dropped"]
        assert not any(k.startswith(("event.", "alarm.")) for k in dropped), dropped
        assert dropped.get("telemetry.disk_floor", 0) > 0, "telemetry was never refused: not at the floor"
    finally:
        stop_and_show_log(proc)
        collector.stop()
        modbus.stop()
