"""Door relays that time their own pulse: what a pulse costs and how long it really lasts.

Against our simulators on loopback (a Shelly Gen2 HTTP RPC device, with and without digest
authentication, and a pymodbus relay board with the flash function), for `--pulses` pulses each:
- switch-on latency of `timed_pulse` as the caller sees it (one request; two with auth: the 401
  challenge, then the authenticated request), median and p95;
- how long the relay stayed on against the pulse asked for (the device's own timer, so this is the
  simulator's timer, not a real board's: it shows that nothing of ours is needed to end it);
- CPU per request, of the client and the simulator together (they share this process).
Real devices add their Wi-Fi / RS-485 time on top; the point here is our side's cost.

    .venv/bin/python -m bench.relays [--pulses 200] [--pulse-s 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench.common import cpu_seconds, print_table
from drivers.modbus.bus import Bus
from drivers.modbus.endpoint import parse_endpoint
from drivers.modbus.simulator import MeterServer, SimulatedRelayModule
from drivers.shelly.simulator import SimulatedShelly
from gateway.core.actuators import ActuatorHub
from gateway.lanes.doors.config import ModbusCoilRelay, ShellyGen2Relay
from gateway.lanes.doors.relays import Relay
from gateway.lanes.doors.wiring import build_relay


async def _measure(
    name: str, relay: Relay, log: list[tuple[float, int, bool]], pulses: int, pulse_s: float
) -> list[tuple[str, str, str]]:
    latencies: list[float] = []
    cpu0 = cpu_seconds()
    for _ in range(pulses):
        t0 = time.perf_counter()
        await relay.timed_pulse(pulse_s)
        latencies.append((time.perf_counter() - t0) * 1000)
        await relay.switch(False)  # end it at once: the next pulse starts from off
    cpu = (cpu_seconds() - cpu0) / (2 * pulses) * 1000
    # one more pulse left to the device's timer alone, to time its length
    before = len(log)
    await relay.timed_pulse(pulse_s)
    deadline = time.monotonic() + pulse_s + 2
    while len(log) < before + 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
    (t_on, _, _), (t_off, _, off) = log[before : before + 2]
    held = (
        f"{(t_off - t_on) * 1000:.0f} ms for {pulse_s * 1000:.0f} ms asked"
        if not off
        else "never switched off"
    )
    p95 = statistics.quantiles(latencies, n=20)[-1]
    return [
        (
            f"{name}: timed_pulse latency median / p95",
            f"{statistics.median(latencies):.2f} / {p95:.2f} ms",
            "",
        ),
        (f"{name}: on, switched off by the device alone", held, "pulse ± 100 ms"),
        (f"{name}: CPU per request (client + simulator)", f"{cpu:.2f} ms", ""),
    ]


async def bench(pulses: int, pulse_s: float) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for password in (None, "bench-s3cret"):
        device = SimulatedShelly(password=password)
        await device.start()
        config = ShellyGen2Relay(type="shelly_gen2", url=device.url)
        name = "shelly_gen2" + (" + digest auth" if password else "")
        rows += await _measure(
            name,
            build_relay(config, ActuatorHub(), password=password),
            device.switches,
            pulses,
            pulse_s,
        )
        await device.stop()

    board = SimulatedRelayModule(9)
    server = MeterServer([board])
    port = await server.start_tcp()
    bus = Bus(parse_endpoint(f"tcp://127.0.0.1:{port}"))
    await bus.open()
    hub = ActuatorHub()
    hub.attach("bus-1", bus)
    flash = ModbusCoilRelay.model_validate(
        {"type": "modbus_coil", "bus": "bus-1", "unit": 9, "coil": 0, "flash": {"address_base": 0x0200}}
    )
    rows += await _measure("modbus flash (TCP)", build_relay(flash, hub), board.switches, pulses, pulse_s)
    plain = ModbusCoilRelay.model_validate({"type": "modbus_coil", "bus": "bus-1", "unit": 9, "coil": 1})
    relay = build_relay(plain, hub)
    latencies = []
    for _ in range(pulses):
        t0 = time.perf_counter()
        await relay.switch(True)  # write + read-back: what a software-timed pulse starts with
        latencies.append((time.perf_counter() - t0) * 1000)
        await relay.switch(False)
    rows.append(
        (
            "modbus coil (TCP): switch(True) with read-back, median",
            f"{statistics.median(latencies):.2f} ms",
            "",
        )
    )
    bus.close()
    await server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pulses", type=int, default=200)
    parser.add_argument("--pulse-s", type=float, default=0.2)
    args = parser.parse_args()
    print_table("Door relays (loopback simulators)", asyncio.run(bench(args.pulses, args.pulse_s)))


if __name__ == "__main__":
    main()
