"""The demo building's devices without cameras: the simulated Modbus TCP gateway (meters, the lobby
door's relay module) and its config text (bus, door, care watch, rules), and the BLE sensors.

`gateway.cli.demo_building` assembles them with the cameras into the demo's config.
"""

from __future__ import annotations

import socket

from drivers.modbus.simulator import MeterServer, SimulatedMeter, SimulatedRelayModule

# The demo's Modbus TCP gateway: four meters answer; unit 5 is configured but dead, so the demo
# shows a device_offline and the circuit breaker at work.
DEMO_METERS = [
    ("meter-1a", 1, "eastron_sdm120", 450.0),
    ("meter-1b", 2, "chint_ddsu666", 300.0),
    ("meter-house", 3, "chint_dtsu666", 2500.0),
    ("water-1", 4, "generic_water", 0.0),
]
DEAD_METER = ("meter-2c", 5, "eastron_sdm120")
DEMO_RELAY_UNIT = 9  # a relay module for the lobby door (door_pulse)


def demo_meter_server() -> MeterServer:
    """Simulated meters behind one Modbus TCP gateway; start it with `start_tcp(port=...)`."""
    meters: list[SimulatedMeter | SimulatedRelayModule] = [
        SimulatedMeter(unit, profile, seed=unit, base_load_w=load) for _, unit, profile, load in DEMO_METERS
    ]
    meters.append(SimulatedRelayModule(DEMO_RELAY_UNIT))
    return MeterServer(meters)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def modbus_text(port: int) -> str:
    """The bus with its meters, the lobby door on its relay module, the care watch and the rules."""
    meters = "".join(
        f'''
[[sources.meters]]
id = "{mid}"
unit = {unit}
profile = "{profile}"
'''
        for mid, unit, profile, _ in [*DEMO_METERS, (*DEAD_METER, 0.0)]
    )
    return f"""
[[sources]]
id = "bus-demo"
type = "modbus"
endpoint = "tcp://127.0.0.1:{port}"
interval_s = 2.0
timeout_ms = 300
{meters}
[sources.meters.points.energy_import_kwh]
interval_s = 10

# The lobby door's strike on a relay module of the same bus (door_pulse and the face reader).
[[doors]]
id = "lobby"
pulse_s = 2

[doors.relay]
type = "modbus_coil"
bus = "bus-demo"
unit = {DEMO_RELAY_UNIT}
coil = 0

# Care watch: two flats, each with its door sensor and electricity meter.
[care]
renotify_min = 30

[[care.households]]
id = "flat-1a"
door = "door-1a"
electricity_meter = "meter-1a"

[[care.households]]
id = "flat-1b"
door = "door-1b"
electricity_meter = "meter-1b"

[[rules]]
id = "house-overload"
type = "threshold"
source = "meter-house"
point = "power_w"
above = 9000
for_s = 30

[[rules]]
id = "doors-left-open"
type = "door_left_open"
sources = ["door-1a", "door-1b", "door-front"]
after_s = 120
"""


# The demo's BLE sensors on a simulated radio: real advert bytes in each model's format (BTHome v2
# encrypted, MiBeacon v5 encrypted, Qingping), decoded by the real lane.
BLE_TEXT = """
[[sources]]
id = "ble-hall"
type = "ble"
backend = "simulated"
telemetry_interval_s = 30

[[sources.sensors]]
id = "door-1a"
address = "54:48:E6:8F:80:A5"
model = "SBDW-002C"
bindkey = "231d39c1d7cc1ab1aee224cd096db932"

[[sources.sensors]]
id = "door-1b"
address = "E4:AA:EC:81:21:AE"
model = "MCCGQ02HL"
bindkey = "017e52d2684779298709b117c0a75a7b"

[[sources.sensors]]
id = "window-house"
address = "58:2D:34:40:3A:4D"
model = "CGH1"
"""
