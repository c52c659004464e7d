"""Start-up of a gateway without cameras, as systemd runs it: READY soon, no ERROR line, and none of
the camera lane's heavy libraries loaded (they cost ~30 MB RSS and seconds of start-up on a Pi).
`bench/startup.py` quotes the figures (READY time, RSS after 60 s)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from drivers.modbus.simulator import SimulatedMeter
from tests.conftest import gateway_toml
from tests.support.broker import Mosquitto
from tests.support.configs import meter_bus_toml
from tests.support.modbus_thread import ModbusThread
from tests.support.notify import NotifySocket
from tests.support.process import lintel

HEAVY = ("cv2", "onnxruntime", "numpy")


def test_a_gateway_without_cameras_starts_quietly_and_light(tmp_path: Path, broker: Mosquitto) -> None:
    modbus = ModbusThread([SimulatedMeter(unit=1, profile="eastron_sdm120")]).start()
    sources = meter_bus_toml(modbus.port, "flat-101", read=None)
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(tmp_path / "state", mqtt=f'url = "{broker.url}"', sources=sources))
    notify = NotifySocket(tmp_path / "notify.sock")
    started = time.monotonic()
    proc = lintel("run", "-c", str(config), env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        ready = notify.wait_for("READY", 30)
        ready_s = time.monotonic() - started
        assert ready is not None, "never READY"
        # generous for a loaded CI machine; bench/startup.py measures the real figure (0.7 s)
        assert ready_s < 10, ready_s
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # let the sources and uplink get going
            notify.collect(0.1)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        loaded = [lib for lib in HEAVY if f"/{lib}/" in maps or f"/{lib}." in maps]
        assert loaded == [], f"a gateway without cameras loaded {loaded}"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        notify.close()
        modbus.stop()
    assert proc.returncode == 0
    lines = err.decode().splitlines()
    assert not [line for line in lines if " ERROR " in line or "Traceback" in line], lines
    assert any("running: gateway site-a/gw-test" in line for line in lines), lines
    assert os.path.exists(tmp_path / "state" / "outbox.db")
