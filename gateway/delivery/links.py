"""The one place that wires delivery: the writer's MQTT links and who wakes them.

`Links` builds the native uplink and, when the encoder's bridges include Sparkplug B, the Sparkplug
link (its own connection, client id `<id>-spb`); every commit of the writer wakes each of them.
The daemon (runtime/assembly.py), the tests' in-process gateway and the benchmarks all wire through
here, so a new link or a change of the wake-up is made once. Start the links after the writer and
stop them before it: a link's graceful end still acknowledges rows to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gateway.core import Clock
from gateway.delivery.client import Uplink
from gateway.delivery.settings import UplinkSettings
from gateway.storage.outbox.writer import OutboxWriter
from gateway.upstream.encode import Encoder

if TYPE_CHECKING:
    from gateway.delivery.sparkplug_link import SparkplugLink


class Links:
    def __init__(
        self,
        settings: UplinkSettings,
        writer: OutboxWriter,
        encoder: Encoder,
        clock: Clock,
        birth_body: Callable[[], Mapping[str, Any]],
        primary_host_id: str | None = None,
    ) -> None:
        self.uplink = Uplink(settings, writer, encoder, clock, birth_body)
        self.sparkplug: SparkplugLink | None = None
        if encoder.bridges:  # the Sparkplug modules (protobuf) are imported only with a bridge on
            from gateway.delivery.sparkplug_link import SparkplugLink
            from gateway.upstream.bridges.sparkplug import SparkplugBridge

            spb = next((b for b in encoder.bridges.items if isinstance(b, SparkplugBridge)), None)
            if spb is not None:
                self.sparkplug = SparkplugLink(settings, writer, clock, spb, primary_host_id)
        writer.on_commit = self.wake

    @property
    def all(self) -> list[Uplink | SparkplugLink]:
        return [self.uplink] if self.sparkplug is None else [self.uplink, self.sparkplug]

    def wake(self, last_row: int) -> None:
        """The writer committed (called in its thread): every link may have rows to send."""
        for link in self.all:
            link.wake(last_row)

    def start(self) -> None:
        for link in self.all:
            link.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop each link in turn, each finishing its in-flight rows within `timeout`."""
        for link in reversed(self.all):
            link.stop(timeout)
