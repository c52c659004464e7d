"""An in-process outbox writer + its links, wired as the daemon wires them (delivery/links.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from gateway.core import Event, Klass, Reading, SystemClock
from gateway.delivery import Uplink, UplinkSettings
from gateway.delivery.links import Links
from gateway.delivery.sparkplug_link import SparkplugLink
from gateway.storage.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.upstream.bridges import Bridges
from gateway.upstream.bridges.sparkplug import SparkplugBridge
from gateway.upstream.encode import Encoder, Topics

TOPICS = Topics("lintel", "site-a", "gw-test")


class InProcessGateway:
    def __init__(
        self,
        db: Path,
        port: int,
        limits: OutboxLimits | None = None,
        bridges: Bridges | None = None,
        **settings: Any,
    ) -> None:
        self.encoder = Encoder(TOPICS, bridges)
        self.writer = OutboxWriter(OutboxStore(db), self.encoder, SystemClock(), limits or OutboxLimits())
        options: dict[str, Any] = {"reconnect_initial_s": 0.1, "reconnect_max_s": 0.5, "stable_after_s": 1.0}
        options.update(settings)
        uplink = Uplink(
            UplinkSettings(host="127.0.0.1", port=port, tls=bool(options.pop("tls", False)), **options),
            self.writer,
            self.encoder,
            SystemClock(),
            lambda: {
                "versions": {"lintel": "test"},
                "config_sha256": "0" * 64,
                "boot_reason": "restart",
                "started_ms": 1,
                "outbox": {"rows": _zero(), "bytes": _zero(), "dropped": {}},
            },
        )
        self.links = Links(uplink)
        self.uplink = self.links.uplink
        self.sparkplug: SparkplugLink | None = self.links.sparkplug  # with a Sparkplug bridge on

    def start(self) -> InProcessGateway:
        self.writer.start()
        self.links.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.links.stop(timeout)
        self.writer.stop()

    def backlog(self) -> int:
        return self.writer.backlog_rows()

    def wait_drained(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.writer.flush()
            if self.backlog() == 0 and self.writer.pending_count() == 0:
                return True
            time.sleep(0.05)
        return False


def _zero() -> dict[str, int]:
    return {k.label: 0 for k in Klass}


class SteadyLoad:
    """Submits a mix of classes at a steady rate from a thread, like busy devices would."""

    def __init__(self, writer: OutboxWriter, rate_per_s: float = 1000.0) -> None:
        self.writer = writer
        self.rate = rate_per_s
        self.submitted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        start = time.monotonic()
        while not self._stop.is_set():
            ts = int(time.time() * 1000)
            k = i % 100
            if k == 0:
                record: Reading | Event = Event("door-1", "door_forced", ts, {"i": i}, "alarm")
            elif k % 10 == 0:
                record = Event("door-1", "door_opened", ts, {"i": i})
            elif k % 10 == 5:
                record = Reading("door-1", "door_open", k % 2 == 0, ts, klass=Klass.STATE)
            else:
                record = Reading(f"meter-{i % 5}", "power_w", float(i), ts)
            self.writer.submit(record)
            i += 1
            self.submitted = i
            ahead = i / self.rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)

    def start(self) -> SteadyLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def both_bridges(state: Path) -> Bridges:
    """Home Assistant and Sparkplug B, over the devices SteadyLoad feeds (state files in `state`)."""
    from gateway.upstream.bridges import HomeAssistantBridgeConfig, Inventory
    from gateway.upstream.bridges.home_assistant import HomeAssistantBridge
    from gateway.upstream.bridges.sparkplug import SpbTopics
    from gateway.upstream.bridges.sparkplug_model import NodeModel

    devices = (*((f"meter-{i}", "modbus") for i in range(5)), ("door-1", "ble"))
    inv = Inventory(TOPICS.site, TOPICS.gateway_id, "test", devices)
    ha = HomeAssistantBridge(HomeAssistantBridgeConfig(enabled=True), TOPICS, inv, state / "ha.json")
    spb = SparkplugBridge(SpbTopics(TOPICS.site, TOPICS.gateway_id), NodeModel(state / "spb.json"))
    return Bridges([ha, spb])
