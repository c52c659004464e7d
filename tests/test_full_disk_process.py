"""A real `lintel run` whose state folder is on a small tmpfs that fills up (issues 15 and 19):
threshold alarms raised while the disk is full reach the broker once space returns, each with its
`alarm_resolved`, never a resolved without its alarm; sources and uplink keep running meanwhile;
and a restart on the full disk comes up instead of exiting."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.modbus.simulator import SimulatedMeter
from tests.conftest import gateway_toml
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.configs import meter_bus_toml, mqtt_toml, threshold_rule_toml
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel, stop_and_show_log, wait_status
from tests.test_outbox_disk import fill

EPISODES = 4
STALL_S = 2


@pytest.fixture
def small_state(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "state"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True)
    assert done.returncode == 0, f"this test mounts an 8 MiB tmpfs and needs root: {done.stderr!r}"
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def config_text(state: Path, broker: int, modbus: int) -> str:
    sources = meter_bus_toml(modbus, meter="boiler", interval_s=0.2) + threshold_rule_toml("boiler", 1000)
    return gateway_toml(
        state,
        mqtt=mqtt_toml(broker),
        sources=sources,
        outbox={"min_free_disk_mb": 0},
        # the runtime dir (status.json) stays off the full disk, as /run is under systemd
        gateway={"runtime_dir": state.parent / "run"},
        # a full disk is not a hang: the writer keeps retrying, so it must not be reported stalled
        # (the systemd watchdog would restart the gateway and lose the alarms held in memory)
        runtime={"status_interval_s": 0.3, "stall_after_s": STALL_S},
    )


def alarms(c: Collector) -> list[dict[str, Any]]:
    return [
        m.payload
        for m in c.data()
        if m.payload.get("kind") in ("threshold_exceeded", "alarm_resolved") and m.payload.get("attrs")
    ]


def test_alarms_raised_on_a_full_disk_reach_the_broker_once_space_returns(
    tmp_path: Path, small_state: Path, broker: Mosquitto
) -> None:
    meter = SimulatedMeter(1, "eastron_sdm120")
    meter.pin("power_w", 50.0)
    modbus = ModbusThread([meter]).start()
    config = tmp_path / "lintel.toml"
    config.write_text(config_text(small_state, broker.port, modbus.port))
    collector = Collector(broker.port, topic="lintel/#").start()
    proc = lintel("run", "-c", str(config))
    filler = small_state / "filler"
    try:
        wait_status(config, lambda s: s["uplink"]["state"] == "connected", timeout=30)
        fill(filler)
        # the writer first gives back its reserve file (1 MiB): fill that too, like the program
        # that filled the disk would
        deadline = time.monotonic() + 20
        while (small_state / "outbox.db.reserve").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        fill(small_state / "filler-2")
        status = wait_status(config, lambda s: s["outbox"]["dropped"].get("telemetry.disk_full", 0) > 5, 20)
        accepted_when_full = status["pipeline"]["accepted"]
        for _ in range(EPISODES):  # the boiler overloads and recovers, four times, while the disk is full
            meter.pin("power_w", 2500.0)
            wait_status(config, lambda s: bool(s["alarms"]), 10)
            meter.pin("power_w", 50.0)
            wait_status(config, lambda s: not s["alarms"], 10)
        status = wait_status(config, lambda s: s["outbox"]["disk_full"])  # alarms held in memory
        full_since = time.monotonic()
        while time.monotonic() < full_since + STALL_S + 1.5:  # past a whole stall window, still full
            time.sleep(0.2)
        status = wait_status(config, lambda s: s["outbox"]["disk_full"] and s["pid"] == proc.pid)
        assert status["state"] == "running" and status["pipeline"]["accepted"] > accepted_when_full
        states = {c["name"]: c["state"] for c in status["components"]}
        assert states["source:bus-1"] == "running"
        assert states["outbox"] == "running", states  # retrying, not stalled
        assert alarms(collector) == []  # nothing could be committed, so nothing was published yet
        os.unlink(filler)  # space returns
        os.unlink(small_state / "filler-2")
        assert collector.wait_for(lambda c: len(alarms(c)) >= 2 * EPISODES, 30), alarms(collector)
        got = alarms(collector)
        opened = [a["attrs"]["alarm_id"] for a in got if a["kind"] == "threshold_exceeded"]
        resolved = [a["attrs"]["alarm_id"] for a in got if a["kind"] == "alarm_resolved"]
        assert len(opened) == EPISODES and sorted(resolved) == sorted(opened), got
        for alarm_id in resolved:  # never a resolved for an alarm that was not published opened
            assert got.index(next(a for a in got if a["attrs"]["alarm_id"] == alarm_id)) == next(
                i
                for i, a in enumerate(got)
                if a["attrs"]["alarm_id"] == alarm_id and a["kind"] == "threshold_exceeded"
            )

        # A restart on a full disk comes up (degraded), never an exit loop.
        fill(filler)
        fill(small_state / "filler-2")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        proc = lintel("run", "-c", str(config))
        status = wait_status(config, lambda s: s["state"] == "running" and s["pid"] == proc.pid, 30)
        assert proc.poll() is None
        os.unlink(filler)
        os.unlink(small_state / "filler-2")
    finally:
        stop_and_show_log(proc)
        collector.stop()
        modbus.stop()
