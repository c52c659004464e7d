"""A `lintel run` ready to take signed commands: the set-up the command and attacker tests share.

A Modbus simulator with an overloaded meter (2500 W on unit 1: an overload rule raises its alarm
at once) and a relay board (unit 9), a collector on the gateway's topics and a commander holding
the test operator's key; ready once the uplink is connected and the birth is out.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.modbus.simulator import SimulatedMeter, SimulatedRelayModule
from tests.support.collector import Collector
from tests.support.commander import Commander
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel, stop_and_show_log, wait_status


@dataclass
class CommandedGateway:
    config: Path
    commander: Commander
    collector: Collector
    relay: SimulatedRelayModule
    proc: subprocess.Popen[bytes]


@contextmanager
def commanded_gateway(
    tmp_path: Path,
    broker_port: int,
    config_text: Callable[[Path, int, int], str],
    *,
    topic: str,
    ready: Callable[[dict[str, Any]], bool],
) -> Iterator[CommandedGateway]:
    """The gateway of `config_text(tmp_path, broker_port, modbus_port)`, once `ready(status)` and
    its birth is out; stopped (its log shown if it does not stop) and its peers closed after."""
    meter = SimulatedMeter(1, "eastron_sdm120")
    meter.pin("power_w", 2500.0)
    relay = SimulatedRelayModule(9)
    modbus = ModbusThread([meter, relay]).start()
    config = tmp_path / "lintel.toml"
    config.write_text(config_text(tmp_path, broker_port, modbus.port))
    collector = Collector(broker_port, topic=topic).start()
    commander = Commander(broker_port)
    proc = lintel("run", "-c", str(config))
    try:
        wait_status(config, ready, timeout=30)
        assert collector.wait_for(lambda c: any(m.topic.endswith("/birth") for m in c.snapshot()), 10)
        time.sleep(0.3)  # the SUBACK of the command topic follows the birth
        yield CommandedGateway(config, commander, collector, relay, proc)
    finally:
        stop_and_show_log(proc)
        commander.close()
        collector.stop()
        modbus.stop()
