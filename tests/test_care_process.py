"""The care watch in a real `lintel run` while the uplink is down: the alarm is raised on the
gateway, survives kill -9, is listed and acknowledged on site, and reaches the real broker when it
is back. The flat's electricity meter is a pymodbus server showing no consumption at all."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from drivers.modbus.simulator import SimulatedMeter
from tests.conftest import gateway_toml
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.configs import meter_bus_toml
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel, lintel_output, stop_and_show_log, wait_status
from tests.support.proxy import CuttableProxy
from tests.support.schema import validate


def config_text(tmp_path: Path, mqtt_port: int, modbus_port: int) -> str:
    sources = meter_bus_toml(modbus_port, "elec-1a", read=("power_w", "energy_import_kwh"))
    sources += """
[care]
# Seconds instead of hours, so the test sees a whole episode.
no_activity_day_h = 0.0008
no_activity_night_h = 0.0008
state_save_interval_s = 1
renotify_min = 0

[[care.households]]
id = "flat-1a"
electricity_meter = "elec-1a"
"""
    mqtt = f'url = "mqtt://127.0.0.1:{mqtt_port}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 0.5\n'
    return gateway_toml(tmp_path / "state", mqtt=mqtt, sources=sources, runtime={"status_interval_s": 0.3})


def open_alarms(config: Path) -> list[dict]:
    out = lintel_output("alarms", "list", "-c", str(config), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["open_alarms"]


def test_care_alarm_raised_offline_survives_kill_9_and_is_delivered(
    tmp_path: Path, broker: Mosquitto
) -> None:
    meter = SimulatedMeter(1, "eastron_sdm120")
    meter.pin("power_w", 3.0)  # a router's standby: nobody is home using anything
    meter.pin("energy_import_kwh", 1234.5)
    modbus = ModbusThread([meter]).start()
    proxy = CuttableProxy(broker.port)
    proxy.cut(refuse_s=3600)  # the uplink is down for the whole episode
    config = tmp_path / "lintel.toml"
    config.write_text(config_text(tmp_path, proxy.port, modbus.port))
    collector = Collector(broker.port, topic="lintel/site-a/gw-test/#").start()
    proc = lintel("run", "-c", str(config))
    try:
        status = wait_status(config, lambda s: any(a["kind"] == "care_no_activity" for a in s["alarms"]), 30)
        assert status["uplink"]["state"] != "connected"
        alarms = open_alarms(config)
        assert [a["kind"] for a in alarms] == ["care_no_activity"]
        alarm_id = alarms[0]["alarm_id"]
        assert alarms[0]["attrs"]["household"] == "flat-1a"
        assert alarms[0]["attrs"]["missing_signals"] == []

        # kill -9 while the broker is unreachable: the alarm is on disk (outbox and state).
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert [a["alarm_id"] for a in open_alarms(config)] == [alarm_id]
        proc = lintel("run", "-c", str(config))
        wait_status(config, lambda s: s["state"] == "running" and s["pid"] == proc.pid, 20)
        time.sleep(2)  # long enough for the limit to pass again: it must not open a second alarm

        # The technician on site acknowledges it with the CLI, through the running daemon.
        ack = lintel_output("alarms", "ack", alarm_id, "--by", "warden-2", "-c", str(config))
        assert ack.returncode == 0, ack.stderr
        assert f"alarm {alarm_id} is now acknowledged" in ack.stdout
        assert lintel_output("alarms", "ack", "999", "-c", str(config)).returncode == 1
        listed = lintel_output("alarms", "list", "-c", str(config))
        assert "care_no_activity" in listed.stdout and "warden-2" in listed.stdout

        # The broker comes back: the alarm and the ack arrive, once each.
        proxy.cut(refuse_s=0)

        def arrived(c: Collector) -> bool:
            kinds = [m.payload.get("kind") for m in c.data()]
            return "care_no_activity" in kinds and "alarm_acked" in kinds

        assert collector.wait_for(arrived, 30)
        raised = [m for m in collector.data() if m.payload.get("kind") == "care_no_activity"]
        assert len(raised) == 1
        assert raised[0].topic == "lintel/site-a/gw-test/alarm/flat-1a/care_no_activity"
        assert raised[0].payload["attrs"]["alarm_id"] == alarm_id
        assert raised[0].payload["attrs"]["household"] == "flat-1a"
        acked = [m for m in collector.data() if m.payload.get("kind") == "alarm_acked"]
        assert acked[0].payload["attrs"]["via"] == "local" and acked[0].payload["attrs"]["by"] == "warden-2"
        for m in raised + acked:
            validate(m.topic, m.payload)

        # Activity returns (a kettle): the alarm resolves.
        meter.pin("power_w", 2000.0)
        assert collector.wait_for(
            lambda c: any(m.payload.get("kind") == "care_resolved" for m in c.data()), 20
        )
        resolved = next(m for m in collector.data() if m.payload.get("kind") == "care_resolved")
        assert (
            resolved.payload["attrs"]["alarm_id"] == alarm_id and resolved.payload["attrs"]["acked"] is True
        )
        assert open_alarms(config) == [] or wait_status(config, lambda s: s["alarms"] == [], 5)
    finally:
        stop_and_show_log(proc)
        collector.stop()
        proxy.close()
        modbus.stop()
