"""How fast the Sparkplug link sends what it held while the primary host was offline, and at what CPU.

An in-process outbox writer with the Sparkplug bridge and its link (as the daemon wires them),
against a real mosquitto, a primary host `bench` configured. `--readings` readings of `--meters`
meters x 5 points (one commit per poll round of every meter) are accepted while no STATE says the
host is online (held in the outbox); then a STATE `online` is published and the clock runs until
every held row is done (DDATA acknowledged, DBIRTH superseded by the new births). A plain paho
subscriber counts the DDATA that arrive. Figures: rows held, drain time, DDATA/s, readings/s, this
process's CPU per held DDATA during the drain (the link rewrites each as history, publishes it at
`--qos` (0, the default as in the daemon: done once written; 1: on PUBACK) and acknowledges it to
the writer, which deletes it).

    .venv/bin/python bench/sparkplug_drain.py [--meters 100] [--readings 100000] [--qos 0|1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Broker, cpu_seconds, print_table
from gateway.core import Klass, Reading, SystemClock
from gateway.delivery import UplinkSettings
from gateway.delivery.queues import SPARKPLUG_PREFIX
from gateway.delivery.sparkplug_link import SparkplugLink
from gateway.storage.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.storage.outbox.reader import OutboxReader
from gateway.upstream.bridges import Bridges
from gateway.upstream.bridges.sparkplug import SparkplugBridge, SpbTopics
from gateway.upstream.bridges.sparkplug_model import NodeModel
from gateway.upstream.encode import Encoder, Topics

POINTS = ("energy_import_kwh", "power_w", "voltage_v", "current_a", "frequency_hz")


class Counter:
    """Counts Sparkplug DDATA messages and their metrics as a host would receive them."""

    def __init__(self, port: int) -> None:
        self.ddata = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-spb-counter")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("spBv1.0/+/DDATA/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, _m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.ddata += 1

    def online(self, host: str) -> None:
        body = json.dumps({"online": True, "timestamp": int(time.time() * 1000)})
        self.client.publish(f"spBv1.0/STATE/{host}", body, qos=1, retain=True).wait_for_publish(5)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meters", type=int, default=100)
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--qos", type=int, choices=(0, 1), default=0)
    args = ap.parse_args()
    broker = Broker()
    state = Path(tempfile.mkdtemp(prefix="lintel-bench-spb-"))
    bridge = SparkplugBridge(SpbTopics("bench-site", "bench"), NodeModel(state / "spb.json"))
    writer = OutboxWriter(
        OutboxStore(state / "outbox.db"),
        Encoder(Topics("lintel", "bench-site", "bench"), Bridges([bridge])),
        SystemClock(),
        OutboxLimits(max_pending=1_000_000),
    )
    settings = UplinkSettings(host="127.0.0.1", port=broker.port, tls=False, client_id="bench")
    link = SparkplugLink(settings, writer, SystemClock(), bridge, primary_host_id="bench", qos=args.qos)
    writer.on_commit = link.wake
    counter = Counter(broker.port)
    writer.start()
    link.start()
    try:
        t = 1_795_400_000_000
        per_round = args.meters * len(POINTS)
        for n in range(args.readings):  # one commit per poll round of every meter, as in a gateway
            meter = (n // len(POINTS)) % args.meters
            writer.submit(Reading(f"meter-{meter}", POINTS[n % len(POINTS)], float(n), t + n // per_round))
            if n % per_round == per_round - 1:
                assert writer.flush(60)
        assert writer.flush(120)
        reader = OutboxReader(state / "outbox.db")
        held = reader.page(Klass.TELEMETRY, 0, None, 10_000_000, SPARKPLUG_PREFIX)
        reader.close()
        rows = len(held)
        data_rows = sum(1 for m in held if "/DDATA/" in m.topic)
        while link.state != "waiting for primary host":
            time.sleep(0.01)
        assert link.sent == 0, "the link sent while the primary host was offline"
        cpu0, start = cpu_seconds(), time.monotonic()
        counter.online("bench")
        while link.acked + link.superseded < rows:
            time.sleep(0.005)
            if time.monotonic() - start > 300:
                raise SystemExit(f"the held rows did not drain within 300 s: {rows} held, {link.report()}")
        elapsed, cpu = time.monotonic() - start, cpu_seconds() - cpu0
        # the subscriber may still be reading (QoS 0 rows are done once written): give it 10 s
        settle = time.monotonic() + 10
        while counter.ddata < data_rows and time.monotonic() < settle:
            time.sleep(0.01)
    finally:
        link.stop(5)
        writer.stop()
        counter.stop()
        broker.stop()
    print_table(
        f"Sparkplug link: draining what was held while the primary host was offline "
        f"({args.meters} meters x {len(POINTS)} points)",
        [
            ("readings accepted while the host was offline", f"{args.readings}", ""),
            ("Sparkplug rows held (DDATA: one per device per commit)", f"{rows} ({data_rows} DDATA)", ""),
            ("drain time after STATE online", f"{elapsed:.2f} s", ""),
            (f"DDATA per second (history rewrite, QoS {args.qos}, ack)", f"{data_rows / elapsed:.0f}", ""),
            ("readings per second", f"{args.readings / elapsed:.0f}", ""),
            ("CPU per held DDATA (link, writer, counter)", f"{cpu / data_rows * 1e6:.0f} µs", ""),
            ("DDATA the counting subscriber received", f"{counter.ddata}", f">= {data_rows}"),
        ],
    )


if __name__ == "__main__":
    main()
