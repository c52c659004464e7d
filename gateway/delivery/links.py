"""The one place that wires delivery: the writer's MQTT links and who wakes them.

`Links` builds the native uplink and, when the encoder's bridges include Sparkplug B, the Sparkplug
link (its own connection, client id `<id>-spb`); every commit of the writer wakes each of them.
The daemon (runtime/assembly.py), the tests' in-process gateway and the benchmarks all wire through
here, so a new link or a change of the wake-up is made once. Start the links after the writer and
stop them before it: a link's graceful end still acknowledges rows to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.delivery.client import Uplink

if TYPE_CHECKING:
    from gateway.delivery.sparkplug_link import SparkplugLink


class Links:
    """`uplink` and, when the encoder's bridges include Sparkplug B, a Sparkplug link beside it (the
    same broker settings, the same writer), each woken by every commit of the writer."""

    def __init__(
        self, uplink: Uplink, primary_host_id: str | None = None, *, qos: int = 0, state_skew_s: float = 300.0
    ) -> None:
        """`primary_host_id`, `qos` and `state_skew_s`: the Sparkplug link's (SparkplugLink)."""
        self.uplink = uplink
        self.sparkplug: SparkplugLink | None = None
        bridges = uplink.encoder.bridges
        if bridges:  # the Sparkplug modules (protobuf) are imported only with a bridge on
            from gateway.delivery.sparkplug_link import SparkplugLink
            from gateway.upstream.bridges.sparkplug import SparkplugBridge

            spb = next((b for b in bridges.items if isinstance(b, SparkplugBridge)), None)
            if spb is not None:
                self.sparkplug = SparkplugLink(
                    uplink.settings, uplink.writer, uplink.clock, spb, primary_host_id
                )
        uplink.writer.on_commit = self.wake

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
