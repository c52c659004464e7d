"""Simulated Modbus meters on a real pymodbus server, for `lintel demo`, the tests and the benchmark.

Each simulated meter serves a shipped profile's register map with realistic, changing values: a
household load following the time of day (power, current, voltage, frequency, power factor) whose
energy counters integrate the power, or a water meter whose volume grows with bursts of flow. Values
are encoded with the profile's own types, orders and scales, so the gateway's decoding is exercised
end to end. `pin(name, value)` fixes a point (datasheet examples, counter resets).

The server is pymodbus's own (3.16 `SimDevice`), over TCP or a serial port (a socat pty), with
function 05 decoded by `CoilWord` so relay modules see raw words (their timed "flash" command).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus.coilword import CoilWord
from drivers.modbus.profiles import MeterPoint, profile_points
from drivers.modbus.registers import encode

# The server logs every refused request with a traceback at ERROR; tests provoke those on purpose.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

_FUNCTION_BLOCK = {1: 0, 2: 1, 3: 2, 4: 3}  # SimDevice's 4-tuple order: coils, inputs, holding, input regs


class SimulatedMeter:
    def __init__(
        self,
        unit: int,
        profile: str,
        *,
        seed: int = 0,
        base_load_w: float = 400.0,
        clock: Callable[[], float] = time.time,
        points: list[MeterPoint] | None = None,
    ) -> None:
        self.unit = unit
        self.profile = profile
        self.points = points if points is not None else profile_points(profile)
        self._three_phase = any(pt.name.endswith("_l3_v") for pt in self.points)
        self._rng = random.Random(seed)
        self._clock = clock
        self._base_w = base_load_w
        self._last_t = clock()
        self.energy_kwh = 1000.0 + self._rng.random() * 4000
        self.volume_m3 = 100.0 + self._rng.random() * 400
        self._flow_m3h = 0.0
        self._power_w = base_load_w
        self.pinned: dict[str, float | int | bool | str] = {}

    def pin(self, name: str, value: float | int | bool | str) -> None:
        self.pinned[name] = value

    def _advance(self) -> None:
        now = self._clock()
        dt = max(0.0, now - self._last_t)
        self._last_t = now
        hour = (now / 3600) % 24
        daily = 0.6 + 0.4 * math.sin((hour - 7) / 24 * 2 * math.pi)
        self._power_w = max(15.0, self._base_w * daily + self._rng.gauss(0, self._base_w * 0.05))
        self.energy_kwh += self._power_w * dt / 3_600_000
        if self._rng.random() < 0.15:
            self._flow_m3h = 0.0 if self._flow_m3h else self._rng.uniform(0.2, 0.9)
        self.volume_m3 += self._flow_m3h * dt / 3600

    def value_of(self, name: str) -> float | int | bool | str:
        if name in self.pinned:
            return self.pinned[name]
        p = self._power_w
        phase_p = p / 3 if self._three_phase else p
        if name.startswith("voltage_"):
            return 400.0 if name.count("_l") == 2 else 230.0 + math.sin(self._last_t / 60) * 1.5
        if name.startswith("current_"):
            return 0.0 if "neutral" in name else round(phase_p / 230.0, 3)
        if name.startswith("power_factor"):
            return 0.95
        if name.startswith("power_l"):
            return round(phase_p, 1)
        if name == "power_w":
            return round(p, 1)
        if name == "apparent_power_va":
            return round(p / 0.95, 1)
        if name == "reactive_power_var":
            return round(p * 0.33, 1)
        if name == "frequency_hz":
            return 50.0 + self._rng.uniform(-0.02, 0.02)
        if name in ("energy_import_kwh", "energy_total_kwh"):
            return round(self.energy_kwh, 3)
        if name.startswith("energy_export") or name.startswith("reactive_export"):
            return 12.5
        if name.startswith("reactive_import"):
            return round(self.energy_kwh * 0.1, 3)
        if name == "volume_m3":
            return round(self.volume_m3, 3)
        if name == "flow_m3h":
            return round(self._flow_m3h, 3)
        return 0

    def device(self) -> SimDevice:
        blocks: list[list[SimData]] = [[], [], [], []]
        for function in (1, 2, 3, 4):
            pts = [pt for pt in self.points if pt.spec.function == function]
            if not pts:
                # pymodbus wants every block; a one-register stub that the meter maps nowhere
                blocks[_FUNCTION_BLOCK[function]].append(
                    SimData(
                        0,
                        count=16 if function < 3 else 1,
                        values=False if function < 3 else 0,
                        datatype=DataType.BITS if function < 3 else DataType.REGISTERS,
                    )
                )
                continue
            lo = min(pt.spec.address for pt in pts)
            hi = max(pt.spec.address + pt.spec.size for pt in pts)
            if function < 3:
                lo16, hi16 = lo // 16, (hi + 15) // 16
                blocks[_FUNCTION_BLOCK[function]].append(
                    SimData(lo16, count=hi16 - lo16, values=False, datatype=DataType.BITS)
                )
            else:
                blocks[_FUNCTION_BLOCK[function]].append(
                    SimData(lo, count=hi - lo, values=0, datatype=DataType.REGISTERS)
                )
        return SimDevice(
            id=self.unit, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]), action=self._action
        )

    async def _action(
        self, function: int, start: int, address: int, count: int, registers: list[int], set_values: object
    ) -> None:
        if set_values is not None or function not in (3, 4):
            return None
        self._advance()
        for pt in self.points:
            spec = pt.spec
            if (
                spec.function != function
                or spec.address + spec.size <= address
                or spec.address >= address + count
            ):
                continue
            words = encode(spec, self.value_of(spec.name))
            for i, word in enumerate(words):
                at = spec.address + i - start
                if 0 <= at < len(registers):
                    registers[at] = word
        return None


class SimulatedRelayModule:
    """A Modbus relay module (door strikes, gates): `coils` relays at coil addresses 0..coils-1.

    Like Waveshare/Eletechsup boards it also has the timed "flash" command: function 05 at coil
    address `flash_base + n` with a value v (1..65535) switches relay n on and, v x `flash_unit_ms`
    later, off again by itself, whoever is still connected. A plain write to relay n cancels a
    running flash. A value other than 0xFF00/0x0000 at a relay's own address is refused with
    "illegal data value", as the standard says.

    Every switch is logged with its monotonic time in `switches` as (time, coil, on), so a test can
    see a door pulse's length; `states()` is what the relays show now.
    """

    def __init__(
        self, unit: int, coils: int = 8, *, flash_base: int | None = 0x0200, flash_unit_ms: int = 100
    ) -> None:
        self.unit = unit
        self.coils = coils
        self.flash_base = flash_base
        self.flash_unit_ms = flash_unit_ms
        self.switches: list[tuple[float, int, bool]] = []
        top = coils if flash_base is None else max(coils, flash_base + coils)
        self._data = SimData(0, count=top, values=False, datatype=DataType.BITS)  # count: bits
        self._on: dict[int, bool] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def device(self) -> SimDevice:
        stub = [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]
        inputs = [SimData(0, count=1, values=False, datatype=DataType.BITS)]
        return SimDevice(id=self.unit, simdata=([self._data], inputs, stub, stub), action=self._action)

    def states(self) -> dict[int, bool]:
        return {coil: self._on.get(coil, False) for coil in range(self.coils)}

    def _switch(self, coil: int, on: bool) -> None:
        self._on[coil] = on
        self.switches.append((time.monotonic(), coil, on))

    def _flash_end(self, coil: int, registers: list[int], at: int) -> None:
        self._timers.pop(coil, None)
        registers[at] &= ~(1 << (coil % 16))
        self._switch(coil, False)

    async def _action(
        self, function: int, start: int, address: int, count: int, registers: list[int], set_values: object
    ) -> ExcCodes | None:
        if function not in (5, 15) or set_values is None:
            return None
        values: list[Any] = set_values if isinstance(set_values, list) else [set_values]
        base = self.flash_base
        if function == 5 and base is not None and base <= address < base + self.coils:
            word = int(values[0])
            if not 1 <= word <= 0xFFFF or isinstance(values[0], bool):
                return ExcCodes.ILLEGAL_VALUE
            coil = address - base
            if timer := self._timers.pop(coil, None):
                timer.cancel()
            at = coil // 16 - start  # the relay's own bit, so that reading the coil shows it
            registers[at] |= 1 << (coil % 16)
            self._switch(coil, True)
            delay = word * self.flash_unit_ms / 1000
            self._timers[coil] = asyncio.get_running_loop().call_later(
                delay, self._flash_end, coil, registers, at
            )
            return None
        if function == 5 and not isinstance(values[0], bool) and values[0] not in (0xFF00, 0):
            return ExcCodes.ILLEGAL_VALUE
        for i, value in enumerate(values):
            coil = address + i
            if timer := self._timers.pop(coil, None):
                timer.cancel()
            self._switch(coil, bool(value))
        return None


async def _no_target(*_: object) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


class MeterServer:
    """A pymodbus server answering for several simulated meters (one RS-485 line or TCP gateway)."""

    def __init__(self, meters: list[SimulatedMeter | SimulatedRelayModule]) -> None:
        self.meters = meters
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve Modbus TCP; returns the port (an ephemeral one when `port` is 0).

        Like a real Modbus TCP gateway, a unit id with no meter behind it is answered with exception
        0x0B, "gateway target device failed to respond".
        """
        devices = [m.device() for m in self.meters]
        devices.append(
            SimDevice(
                id=0,
                simdata=[SimData(0, count=0xFFFF, values=0, datatype=DataType.REGISTERS)],
                action=_no_target,
            )
        )
        self._server = ModbusTcpServer(devices, address=(host, port), custom_pdu=[CoilWord])
        await self._start()
        if port == 0:
            sockets = self._server.transport.sockets if self._server.transport else []  # type: ignore[attr-defined]
            port = sockets[0].getsockname()[1]
        self.port = port
        return port

    async def start_serial(self, device: str, baudrate: int = 9600) -> None:
        """Serve Modbus RTU on a serial device (in tests, one end of a socat pty pair)."""
        self._server = ModbusSerialServer(
            [m.device() for m in self.meters],
            port=device,
            baudrate=baudrate,
            ignore_missing_devices=True,
            custom_pdu=[CoilWord],
        )
        await self._start()

    async def _start(self) -> None:
        assert self._server is not None
        self._task = asyncio.create_task(self._server.serve_forever())
        for _ in range(100):
            if self._server.is_active():
                return
            await asyncio.sleep(0.02)
        raise RuntimeError("simulated Modbus server did not start")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._server = self._task = None
