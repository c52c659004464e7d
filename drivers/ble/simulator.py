"""Simulated door sensors on a simulated radio: real advert bytes, no adapter.

`SimulatedRadio` implements our `AdvertScanner` interface, so the whole lane (decoders, tracker,
watchdog) runs unchanged in `lintel demo` and the benchmark. Each sensor speaks its model's real
format (BTHome v2, encrypted when it has a key; MiBeacon v5 encrypted; Qingping), repeats every
transmission a few times as real sensors do, sends a heartbeat, and opens and closes its door at
random, seeded times.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from drivers.ble import bthome, mibeacon, qingping
from drivers.ble.adverts import BTHOME_UUID, MIBEACON_UUID, QINGPING_UUID, Advert, mac_bytes
from drivers.ble.scanner import OnAdvert


@dataclass
class SimulatedSensor:
    """One door sensor. `advert()` encodes its current state in its model's format."""

    address: str
    model: str = "SBDW-002C"
    key: bytes | None = None
    rssi: int = -70
    door_open: bool = False
    left_open: bool = False
    battery_pct: int = 97
    packet_id: int = 0
    counter: int = 1
    name: str | None = None
    mac: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.mac = mac_bytes(self.address)

    def next_packet(self) -> None:
        self.packet_id = (self.packet_id + 1) & 0xFF
        self.counter += 1

    def advert(self, ts: float | None = None) -> Advert:
        uuid, data = self.service_data()
        return Advert(
            self.address, self.rssi, {uuid: data}, {}, self.name, time.monotonic() if ts is None else ts
        )

    def service_data(self) -> tuple[str, bytes]:
        # Xiaomi and Qingping share the door code: 0 open, 1 closed, 2 open for too long.
        code = (2 if self.left_open else 0) if self.door_open else 1
        if self.model == "MCCGQ02HL":
            mi_objects = [(0x1019, bytes([code])), (0x4803, bytes([self.battery_pct]))]
            # The 32-bit frame counter: its low byte is the frame's counter, the rest the extension.
            data = mibeacon.encode(
                self.mac, 0x098B, self.counter & 0xFF, mi_objects, key=self.key, ext_counter=self.counter >> 8
            )
            return MIBEACON_UUID, data
        if self.model == "CGH1":
            items: list[tuple[int, bytes]] = [
                (0x04, bytes([code])),
                (0x02, bytes([self.battery_pct])),
                (0x0F, bytes([self.packet_id])),
            ]
            return QINGPING_UUID, qingping.encode(self.mac, 0x04, items)
        # Shelly BLU Door/Window and any BTHome v2 sensor: packet id, battery, window state.
        objects: list[tuple[int, int]] = [
            (0x00, self.packet_id),
            (0x01, self.battery_pct),
            (0x2D, int(self.door_open)),
        ]
        return BTHOME_UUID, bthome.encode(objects, mac=self.mac, key=self.key, counter=self.counter)


class SimulatedRadio:
    """A radio full of simulated sensors. Doors change every `mean_change_s` on average (seeded)."""

    mode = "simulated"

    def __init__(
        self,
        sensors: list[SimulatedSensor],
        *,
        seed: int = 7,
        mean_change_s: float = 8.0,
        heartbeat_s: float = 30.0,
        repeats: int = 3,
    ) -> None:
        self.sensors = sensors
        self.mean_change_s = mean_change_s
        self.heartbeat_s = heartbeat_s
        self.repeats = repeats
        self._random = random.Random(seed)
        self._tasks: list[asyncio.Task[None]] = []
        self.resets = 0

    async def start(self, on_advert: OnAdvert) -> None:
        await self.stop()
        for sensor in self.sensors:
            self._tasks.append(asyncio.create_task(self._run(sensor, on_advert)))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reset_adapter(self) -> None:
        self.resets += 1

    async def _run(self, sensor: SimulatedSensor, on_advert: OnAdvert) -> None:
        await self._send(sensor, on_advert)  # heard at once, like a sensor already installed
        next_heartbeat = time.monotonic() + self.heartbeat_s
        while True:
            wait = self._random.expovariate(1 / self.mean_change_s)
            await asyncio.sleep(min(wait, max(0.0, next_heartbeat - time.monotonic())))
            if time.monotonic() >= next_heartbeat:
                next_heartbeat = time.monotonic() + self.heartbeat_s
            else:
                sensor.door_open = not sensor.door_open
                sensor.left_open = False
            sensor.next_packet()
            await self._send(sensor, on_advert)

    async def _send(self, sensor: SimulatedSensor, on_advert: OnAdvert) -> None:
        for _ in range(self.repeats):
            sensor.rssi = -60 - self._random.randint(0, 25)
            on_advert(sensor.advert())
            await asyncio.sleep(0.03)
