"""The parts every gateway has, built from a validated config (no lane is built here).

`Core` owns the outbox (store + writer thread), the uplink thread, the state store, the alarm book,
the pipeline, the hubs sources lend their frames and ports through, the command router, and the one
inference engine the camera lanes share (created on first use). The daemon adds the lanes
(gateway.runtime.lanes, given `lane_deps()`) and the sources (gateway.runtime.sources) around it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import sqlite3
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.commands.envelope import MAX_COMMAND_BYTES
from gateway.commands.router import CommandRouter
from gateway.config import LoadedConfig
from gateway.core import Clock, Event, Record
from gateway.core.actuators import ActuatorHub
from gateway.core.clock import clock_is_set
from gateway.core.frames import FrameHub
from gateway.core.processor import Processor
from gateway.core.tags import TagHub
from gateway.delivery import Uplink, UplinkSettings
from gateway.delivery.inbox import CommandInbox, InboxLimits
from gateway.delivery.links import Links
from gateway.lanes import LaneDeps
from gateway.lanes.alarms import AlarmBook, AlarmReminders
from gateway.releases.formats import FormatGate
from gateway.releases.report import ReleaseReport
from gateway.releases.state import UpdateState, read_state
from gateway.runtime.bridges import build_bridges
from gateway.runtime.pipeline import Pipeline
from gateway.storage.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.storage.state import StateStore, state_path
from gateway.upstream.encode import Encoder, Topics

if TYPE_CHECKING:
    from gateway.delivery.sparkplug_link import SparkplugLink
    from gateway.inference.engine import InferenceEngine

log = logging.getLogger("lintel.daemon")

GATEWAY_SOURCE = "gateway"


def boot_id() -> int:
    """This system boot's id as an int (0 where the kernel does not say)."""
    try:
        return int(Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:15], 16)
    except (OSError, ValueError):
        return 0


def versions() -> dict[str, str]:
    import paho.mqtt

    return {
        "lintel": __version__,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "paho_mqtt": paho.mqtt.__version__,
    }


class Core:
    def __init__(
        self,
        loaded: LoadedConfig,
        clock: Clock,
        observers: list[Callable[[Record], None]],
    ) -> None:
        config = loaded.config
        self.loaded = loaded
        self.clock = clock
        gw = config.gateway
        self.topics = Topics(config.mqtt.topic_prefix if config.mqtt else "lintel", gw.site, gw.id)
        self.encoder = Encoder(self.topics, build_bridges(loaded, self.topics))
        # one decision for every data file: no migration in place while this release is on probation
        gate = FormatGate.at(loaded.state_dir)
        self.store = OutboxStore(loaded.outbox_path, gate)
        self.boot_reason = self._boot_reason()
        self.writer = OutboxWriter(self.store, self.encoder, clock, OutboxLimits.from_config(config.outbox))
        self.state_store = StateStore(state_path(loaded.state_dir), gate=gate)
        self.book = AlarmBook(self.state_store)
        self.pipeline = Pipeline(self.writer.submit, [], observers, self.writer.submit_many)
        self.frames = FrameHub()
        self.actuators = ActuatorHub()
        self.tags = TagHub()  # face+tag: the face lane watches, BLE sources report
        self.started_mono = clock.monotonic()
        self.started_ms = clock.time_ms()
        self.router = CommandRouter.from_config(
            config.commands, gw.id, gw.site, {}, self.state_store, clock, self.writer.submit_result
        )
        self.links: Links | None = None
        # Between the uplink thread and the router: bounded, checked before parsing.
        self.inbox = CommandInbox(clock, InboxLimits(max_bytes=MAX_COMMAND_BYTES))
        # the update state as the release probation holds it (the daemon replaces this reader)
        self.release_state: Callable[[], UpdateState | None] = lambda: read_state(loaded.state_dir)
        self._engine: InferenceEngine | None = None  # once a camera lane asked
        self.uplink: Uplink | None = None
        # The running config's version and origin for the birth (the daemon sets it).
        self.config_report: Callable[[], dict[str, Any]] | None = None
        self.sparkplug: SparkplugLink | None = None  # when the Sparkplug bridge is on
        if config.mqtt is not None:
            mqtt = config.mqtt
            password = loaded.secret(mqtt.password_file, mqtt.password_secret)
            settings = UplinkSettings.from_config(mqtt, f"lintel-{gw.site}-{gw.id}", password, loaded.resolve)
            spb = config.bridges.sparkplug
            uplink = Uplink(settings, self.writer, self.encoder, clock, self.birth_body)
            self.links = Links(uplink, spb.primary_host_id, qos=spb.qos, state_skew_s=spb.state_skew_s)
            self.uplink, self.sparkplug = self.links.uplink, self.links.sparkplug

    def lane_deps(self) -> LaneDeps:
        """What the lanes get (the doors are added by the runtime's Lanes, which builds them)."""
        loaded = self.loaded
        return LaneDeps(
            self.clock,
            self.pipeline.submit,
            self.book,
            self.state_store,
            self.frames,
            self.actuators,
            loaded.state_dir,
            self.engine,
            loaded.secret,
            timezone=loaded.config.gateway.timezone,
            tags=self.tags,
        )

    def engine(self) -> InferenceEngine:
        """One inference engine (one thread) for every camera lane, created on first use (a
        gateway without cameras never imports onnxruntime)."""
        if self._engine is None:
            from gateway.inference.engine import InferenceEngine

            self._engine = InferenceEngine(self.loaded.config.inference.threads)
        return self._engine

    def close(self) -> None:
        """The last stop step: the inference thread and the state database."""
        if self._engine is not None:
            self._engine.close()
        self.state_store.close()

    def set_processors(self, lane_processors: list[Processor]) -> None:
        """The lanes' steps, then reminders (each later step sees what earlier raised)."""
        self.pipeline.processors = [*lane_processors, AlarmReminders(self.book)]

    def announce_recovery(self) -> None:
        report = self.store.report
        if report.quarantined_to:
            body = report.event_body()  # what was salvaged, and the seq ranges lost
            self.pipeline.submit(
                Event(GATEWAY_SOURCE, "outbox_replaced", self.clock.time_ms(), body, "warning")
            )

    def birth_body(self) -> dict[str, Any]:
        outbox = self.writer.report()
        extra = {"config": self.config_report()} if self.config_report is not None else {}
        return {
            **extra,
            "versions": versions(),
            "release": asdict(ReleaseReport.of(__version__, self.release_state())),
            "config_sha256": self.loaded.sha256,
            "boot_reason": self.boot_reason,
            "started_ms": self.started_ms,
            "clock_set": clock_is_set(self.clock.time_ms()),
            "outbox": {
                "rows": dataclasses.asdict(outbox.rows),
                "bytes": dataclasses.asdict(outbox.bytes),
                "dropped": outbox.dropped,
                "native_seqs_dropped": outbox.native_seqs_dropped,
                "degraded": outbox.degraded,
            },
        }

    def _boot_reason(self) -> str:
        report = self.store.report
        previous_boot = self.store.meta().get("boot_id")
        this_boot = boot_id()
        self.store.set_meta({"boot_id": this_boot})
        if report.quarantined_to:
            return "outbox_replaced"
        if report.created:
            return "first_start"
        rebooted = previous_boot is not None and previous_boot != this_boot
        if not report.was_clean_shutdown:
            return "power_loss" if rebooted else "crash"
        return "reboot" if rebooted else "restart"

    @property
    def pid(self) -> int:
        return os.getpid()
