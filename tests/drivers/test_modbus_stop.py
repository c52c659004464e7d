"""Stopping a Modbus source that polls as fast as it can (1 ms) against a real pymodbus server.

Python 3.11's `asyncio.wait_for`, which pymodbus awaits every answer with, drops a cancel that
arrives in the same loop turn as the answer; at 1 ms polling that is most stops. These tests cancel
at many random moments in-process, then SIGTERM a real `lintel run` process.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

from drivers.modbus.simulator import MeterServer, SimulatedMeter
from drivers.modbus.source import ModbusBusSource
from gateway.core import Record, SourceContext, SystemClock
from tests.conftest import gateway_toml
from tests.support.buses import tcp_bus
from tests.support.configs import source_toml
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel

# one bus polled every millisecond: in-process below, in a `lintel run` at the end
FAST_METERS = [
    {"id": "m1", "unit": 1, "profile": "eastron_sdm120"},
    {"id": "m2", "unit": 2, "profile": "chint_ddsu666"},
]


class CountingMeter(SimulatedMeter):
    """A simulated meter that counts the requests it answered (seen from the wire's far end)."""

    answered = 0

    async def _action(self, *args: object) -> None:  # type: ignore[override]
        self.answered += 1
        await super()._action(*args)  # type: ignore[arg-type]


def meters() -> list[SimulatedMeter]:
    return [CountingMeter(1, "eastron_sdm120"), CountingMeter(2, "chint_ddsu666")]


def test_a_cancelled_source_stops_at_once_even_when_the_answer_arrives_with_the_cancel() -> None:
    """40 cancels at random moments of 1 ms polling: each ends the task within 0.5 s, and no request
    is sent after it ended."""
    rng = random.Random(3)

    async def main() -> list[float]:
        server = MeterServer(meters())
        port = await server.start_tcp()
        cfg = tcp_bus(port, "bus-1", FAST_METERS, interval_s=0.001)
        took: list[float] = []
        try:
            for _ in range(40):
                source = ModbusBusSource(cfg)
                out: list[Record] = []
                ctx = SourceContext("bus-1", SystemClock(), lambda r, out=out: out.append(r) or True)
                task = asyncio.create_task(source.run(ctx))
                while not out:  # polling for real before the cancel
                    await asyncio.sleep(0.005)
                await asyncio.sleep(rng.uniform(0, 0.05))
                t0 = time.monotonic()
                task.cancel()
                done, _ = await asyncio.wait([task], timeout=0.5)
                took.append(time.monotonic() - t0)
                assert task in done, (
                    f"source still polling 0.5 s after cancel ({source.bus.stats.requests} requests)"
                )
                assert task.cancelled()
                requests = source.bus.stats.requests
                await asyncio.sleep(0.02)
                assert source.bus.stats.requests == requests
        finally:
            await server.stop()
        return took

    took = asyncio.run(main())
    assert max(took) < 0.5


def test_sigterm_stops_lintel_run_polling_at_1ms_five_times(tmp_path: Path) -> None:
    """A real `lintel run` polling a pymodbus TCP simulator every 1 ms: SIGTERM -> exit 0 within
    shutdown_timeout_s, sources stopped in the first stage, no false "disk full" loss."""
    devices = meters()
    sim = ModbusThread(devices).start()
    timeout_s = 5.0
    text = gateway_toml(
        tmp_path / "state",
        sources=source_toml(
            "modbus", "bus-1", "meters", FAST_METERS, endpoint=f"tcp://127.0.0.1:{sim.port}", interval_s=0.001
        ),
        runtime={"shutdown_timeout_s": timeout_s},
    )
    config = tmp_path / "lintel.toml"
    config.write_text(text)
    try:
        for attempt in range(5):
            answered = sum(m.answered for m in devices)  # type: ignore[attr-defined]
            proc = lintel("run", "-c", str(config))
            try:
                # Polling at full speed (hundreds of answers) before the signal.
                deadline = time.monotonic() + 30
                while sum(m.answered for m in devices) < answered + 300:  # type: ignore[attr-defined]
                    assert proc.poll() is None and time.monotonic() < deadline, "never started polling"
                    time.sleep(0.05)
                sent = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                _, err = proc.communicate(timeout=timeout_s + 5)
                took = time.monotonic() - sent
            finally:
                if proc.returncode is None:
                    proc.kill()
                    proc.communicate()
            log = err.decode()
            assert proc.returncode == 0, f"attempt {attempt}: exit {proc.returncode}\n{log[-3000:]}"
            assert took < timeout_s, f"attempt {attempt}: took {took:.1f} s\n{log[-3000:]}"
            stage = next(ln for ln in log.splitlines() if "shutdown: sources stopped" in ln)
            assert float(stage.rsplit("in ", 1)[1].split()[0]) < 0.5, stage
            assert "could not be written" not in log, log[-3000:]
            assert "lintel stopped" in log
    finally:
        sim.stop()
