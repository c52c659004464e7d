"""A private system D-Bus with a mocked bluetoothd, so bleak runs for real without a radio.

`MockBluez` starts `dbus-daemon` (a session-style config on a private socket) and python-dbusmock
with our `bluez_template.py` under Debian's python3; anything started with `env()` (the daemon, the
CLI, an in-process bleak) talks to it as if it were the system bus. Adverts are injected with
`advertise()` the way bluetoothd reports them: new Device1 objects, then PropertiesChanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).with_name("bluez_template.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def require_mock_bluez() -> None:
    missing = [tool for tool in ("dbus-daemon", "busctl") if shutil.which(tool) is None]
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import dbusmock"], capture_output=True)
    if missing or probe.returncode != 0:
        # setup.sh --test installs dbus, systemd (busctl) and python3-dbusmock: a missing piece is a
        # broken test machine, not a reason to skip.
        pytest.fail(
            f"mock BlueZ needs dbus-daemon, busctl and python3-dbusmock (missing: {missing or 'dbusmock'})"
        )


class MockBluez:
    def __init__(self, folder: Path, *, passive: bool = False) -> None:
        self.folder = folder
        self.passive = passive
        self.address = f"unix:path={folder / 'system_bus_socket'}"
        self._daemon: subprocess.Popen[bytes] | None = None
        self._mock: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def start(self) -> MockBluez:
        """Start both processes; if either fails to come up, stop what did start before raising
        (a fixture whose start raises never reaches its teardown)."""
        require_mock_bluez()
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> MockBluez:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._daemon = subprocess.Popen(
            [
                "dbus-daemon",
                "--config-file=/usr/share/dbus-1/session.conf",
                "--nofork",
                f"--address={self.address}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (self.folder / "system_bus_socket").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("dbus-daemon did not start")
            time.sleep(0.02)
        params = '{"passive": true}' if self.passive else "{}"
        log = (self.folder / "dbusmock.log").open("wb")
        self._mock = subprocess.Popen(
            [SYSTEM_PYTHON, "-m", "dbusmock", "--system", "--template", str(TEMPLATE), "-p", params],
            env={**os.environ, **self.env()},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while self._busctl("status", "org.bluez", check=False).returncode != 0:
            if time.monotonic() > deadline or self._mock.poll() is not None:
                raise RuntimeError(f"dbusmock did not start: {(self.folder / 'dbusmock.log').read_text()}")
            time.sleep(0.05)
        return self

    def add_adapter(self, name: str = "hci0") -> None:
        self._busctl("call", "org.bluez", "/", "org.bluez.Mock", "AddLEAdapter", "s", name)

    def remove_adapter(self, name: str = "hci0") -> None:
        self._busctl("call", "org.bluez", "/", "org.bluez.Mock", "RemoveAdapterWithDevices", "s", name)

    def fail_start(self, error: str, count: int, adapter: str = "hci0") -> None:
        self._busctl(
            "call", "org.bluez", "/", "org.bluez.Mock", "FailStart", "ssi", adapter, error, str(count)
        )

    def advertise(
        self, address: str, uuid: str, data: bytes, *, rssi: int = -60, name: str = "", adapter: str = "hci0"
    ) -> None:
        self._busctl(
            "call", "org.bluez", "/", "org.bluez.Mock", "Advertise", "sssna{sv}",
            adapter, address, name, str(rssi), "1", uuid, "ay", str(len(data)), *[str(b) for b in data],
        )  # fmt: skip

    def scanning(self, adapter: str = "hci0") -> bool:
        """Someone scans: discovery is on (active), or a passive advertisement monitor is registered."""
        if "true" in self.property(f"/org/bluez/{adapter}", "org.bluez.Adapter1", "Discovering"):
            return True
        log = (self.folder / "dbusmock.log").read_text(errors="replace")
        return log.count("RegisterMonitor") > log.count("UnregisterMonitor")

    def property(self, path: str, interface: str, name: str) -> str:
        return self._busctl("get-property", "org.bluez", path, interface, name).stdout.strip()

    def _busctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["busctl", f"--address={self.address}", "--", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=10,
        )

    def stop(self) -> None:
        for proc in (self._mock, self._daemon):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
