"""The Bluetooth adapter as BlueZ sees it, over D-Bus and read-only: present, powered, which BlueZ,
and whether passive scanning (AdvertisementMonitorManager1) is on offer."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

from gateway.diagnostics.context import Context
from gateway.diagnostics.report import Finding, fail, ok, warn

_BLUETOOTHD = ("/usr/libexec/bluetooth/bluetoothd", "/usr/lib/bluetooth/bluetoothd", "/usr/sbin/bluetoothd")
PASSIVE_IFACE = "org.bluez.AdvertisementMonitorManager1"


def bluez_version() -> str | None:
    """bluetoothd's own answer, else the Debian package's version; None if neither is there."""
    for path in _BLUETOOTHD:
        if Path(path).exists():
            try:
                out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5)
                if out.returncode == 0 and out.stdout.strip():
                    return out.stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                pass
    if shutil.which("dpkg-query"):
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "bluez"], capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return None


async def _managed_objects(timeout_s: float) -> tuple[dict[str, Any], dict[str, set[str]]]:
    """BlueZ's objects with their properties, and each adapter's interfaces as introspection lists
    them (an interface without properties, like the monitor manager, is only seen there)."""
    from dbus_fast import BusType, Message, MessageType
    from dbus_fast.aio import MessageBus

    bus = await asyncio.wait_for(MessageBus(bus_type=BusType.SYSTEM).connect(), timeout_s)
    try:
        reply = await asyncio.wait_for(
            bus.call(
                Message(
                    destination="org.bluez",
                    path="/",
                    interface="org.freedesktop.DBus.ObjectManager",
                    member="GetManagedObjects",
                )
            ),
            timeout_s,
        )
        if reply is None or reply.message_type == MessageType.ERROR:
            raise LookupError(reply.error_name if reply is not None else "no reply")
        objects: dict[str, Any] = reply.body[0]
        interfaces: dict[str, set[str]] = {}
        for path, ifaces in objects.items():
            if "org.bluez.Adapter1" in ifaces:
                node = await asyncio.wait_for(bus.introspect("org.bluez", path), timeout_s)
                interfaces[path] = {i.name for i in node.interfaces} | set(ifaces)
    finally:
        bus.disconnect()
    return objects, interfaces


def check_ble(ctx: Context) -> list[Finding]:
    assert ctx.loaded is not None
    sources = [
        s
        for s in ctx.loaded.config.sources
        if s.type == "ble" and s.enabled and getattr(s, "backend", "bluez") == "bluez"
    ]
    if not sources:
        return []
    try:
        objects, interfaces = asyncio.run(_managed_objects(ctx.timeout_s))
    except (OSError, EOFError, TimeoutError) as exc:
        return [
            fail(
                "ble",
                f"cannot reach the system D-Bus: {exc}",
                "the system message bus is not running: `sudo systemctl start dbus bluetooth`",
            )
        ]
    except LookupError as exc:
        return [
            fail(
                "ble",
                f"BlueZ does not answer on D-Bus ({exc})",
                "start the Bluetooth service: `sudo apt-get install bluez && sudo systemctl enable --now "
                "bluetooth`",
            )
        ]
    version = bluez_version() or "version unknown"
    adapters = sorted(p.rsplit("/", 1)[-1] for p, ifaces in objects.items() if "org.bluez.Adapter1" in ifaces)
    findings: list[Finding] = []
    for source in sources:
        adapter: str = source.adapter  # type: ignore[attr-defined]
        check = f"ble.{adapter}"
        ifaces = objects.get(f"/org/bluez/{adapter}", {})
        props = ifaces.get("org.bluez.Adapter1")
        if props is None:
            findings.append(
                fail(
                    check,
                    f"Bluetooth adapter {adapter} is not there (BlueZ {version} sees: "
                    f"{', '.join(adapters) or 'no adapter'})",
                    "plug in the USB Bluetooth dongle or enable the built-in one (`rfkill unblock "
                    "bluetooth`); if it has another name, set the source's adapter to it",
                )
            )
            continue
        if not _value(props.get("Powered")):
            findings.append(
                fail(
                    check,
                    f"Bluetooth adapter {adapter} is switched off",
                    "`bluetoothctl power on` (and `rfkill unblock bluetooth` if it is blocked); the "
                    "gateway also tries to power it on",
                )
            )
            continue
        mode = source.scanning  # type: ignore[attr-defined]
        address = _value(props.get("Address")) or "?"
        line = f"adapter {adapter} ({address}) is on, BlueZ {version}"
        if PASSIVE_IFACE in interfaces.get(f"/org/bluez/{adapter}", set()):
            findings.append(ok(check, f"{line}, passive scanning available"))
        elif mode == "passive":
            findings.append(
                fail(
                    check,
                    f'{line}, but passive scanning (configured: scanning = "passive") is not on offer',
                    "BlueZ ≥ 5.56 with experimental features: add `--experimental` to bluetoothd "
                    '(`sudo systemctl edit bluetooth`), or set scanning = "auto"',
                )
            )
        else:
            findings.append(
                warn(
                    check,
                    f"{line}; passive scanning is not on offer, the gateway scans actively",
                    "active scanning works but asks every sensor for more data: for passive, BlueZ "
                    "≥ 5.56 with `--experimental` (`sudo systemctl edit bluetooth`)",
                )
            )
    return findings


def _value(v: Any) -> Any:
    return getattr(v, "value", v)
