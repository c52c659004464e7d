"""A simulated Modbus TCP server (meters, relay modules) on its own thread, for daemon tests."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

from drivers.modbus.simulator import MeterServer


class ModbusThread:
    def __init__(self, devices: list[Any]) -> None:
        self.server = MeterServer(devices)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="modbus-sim")
        self.port = 0

    def start(self) -> ModbusThread:
        self._thread.start()
        future: Future[int] = asyncio.run_coroutine_threadsafe(self.server.start_tcp(), self.loop)
        self.port = future.result(10)
        return self

    def pause(self) -> None:
        """Take the server off the network (a TCP gateway rebooting); the devices keep their state."""
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)

    def resume(self) -> None:
        """Serve again on the same port, with the same devices."""
        asyncio.run_coroutine_threadsafe(self.server.start_tcp(port=self.port), self.loop).result(10)

    def start_serial(self, device: str, baudrate: int = 9600) -> ModbusThread:
        """Serve Modbus RTU on a serial device instead (one end of a `PacedLine`)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start_serial(device, baudrate), self.loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
