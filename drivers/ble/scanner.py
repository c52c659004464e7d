"""Our scanner interface and its BlueZ implementation on bleak.

`AdvertScanner` is the seam the tests and the demo use: the source only ever calls `start`, `stop`
and `reset_adapter`, and receives `Advert`s through the callback it passes to `start`. The callback
runs on the event loop and must not block (the source just enqueues).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from drivers.ble.adverts import BTHOME_UUID16, MIBEACON_UUID16, QINGPING_UUID16, Advert

log = logging.getLogger("lintel.ble")

OnAdvert = Callable[[Advert], None]

# Service data AD type (0x16) followed by the 16-bit UUID, little-endian: what passive scanning
# asks the controller to report. Everything else is filtered out in the controller.
_PATTERN_UUIDS = tuple(u.to_bytes(2, "little") for u in (BTHOME_UUID16, MIBEACON_UUID16, QINGPING_UUID16))


class ScannerError(Exception):
    """The scanner could not start or stop; the message says why (BlueZ's error name included)."""


class AdvertScanner(Protocol):
    mode: str

    async def start(self, on_advert: OnAdvert) -> None: ...

    async def stop(self) -> None: ...

    async def reset_adapter(self) -> None: ...


class BleakAdvertScanner:
    """BlueZ through bleak (D-Bus only). `scanning` = passive, active, or auto (passive if BlueZ can)."""

    def __init__(self, adapter: str = "hci0", scanning: str = "auto") -> None:
        self.adapter = adapter
        self.scanning = scanning
        self.mode = "stopped"
        self._scanner: Any = None
        self._passive_refused = False

    async def start(self, on_advert: OnAdvert) -> None:
        from bleak.exc import BleakError

        def detected(device: Any, data: Any) -> None:
            on_advert(
                Advert(
                    device.address.upper(),
                    data.rssi,
                    data.service_data,
                    data.manufacturer_data,
                    data.local_name,
                    time.monotonic(),
                )
            )

        want_passive = self.scanning == "passive" or (self.scanning == "auto" and not self._passive_refused)
        if want_passive:
            try:
                await self._start(detected, "passive")
                return
            except (BleakError, OSError, EOFError) as exc:
                if self.scanning == "passive":
                    raise ScannerError(f"passive scanning failed: {exc}") from exc
                self._passive_refused = True
                log.warning("%s: passive scanning unavailable (%s); scanning actively", self.adapter, exc)
        try:
            await self._start(detected, "active")
        except (BleakError, OSError, EOFError) as exc:
            raise ScannerError(str(exc) or type(exc).__name__) from exc

    async def _start(self, detected: Callable[[Any, Any], None], mode: str) -> None:
        from bleak import BleakScanner
        from bleak.args.bluez import OrPattern
        from bleak.assigned_numbers import AdvertisementDataType

        bluez: dict[str, Any] = {"adapter": self.adapter}
        if mode == "passive":
            bluez["or_patterns"] = [
                OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, uuid) for uuid in _PATTERN_UUIDS
            ]
        scanner = BleakScanner(detection_callback=detected, scanning_mode=mode, bluez=bluez)  # type: ignore[arg-type]
        await scanner.start()
        self._scanner = scanner
        self.mode = mode

    async def stop(self) -> None:
        scanner, self._scanner = self._scanner, None
        self.mode = "stopped"
        if scanner is None:
            return
        try:
            await scanner.stop()
        except Exception as exc:  # stopping a scanner on a vanished adapter fails; nothing to undo
            log.debug("%s: stopping the scanner: %s", self.adapter, exc)

    async def reset_adapter(self) -> None:
        """Power-cycle the adapter through BlueZ (Adapter1.Powered off, then on)."""
        from dbus_fast import BusType, Message, MessageType, Variant
        from dbus_fast.aio import MessageBus

        try:
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        except (OSError, EOFError) as exc:
            raise ScannerError(f"cannot reach the system D-Bus: {exc}") from exc
        try:
            for powered in (False, True):
                reply = await bus.call(
                    Message(
                        destination="org.bluez",
                        path=f"/org/bluez/{self.adapter}",
                        interface="org.freedesktop.DBus.Properties",
                        member="Set",
                        signature="ssv",
                        body=["org.bluez.Adapter1", "Powered", Variant("b", powered)],
                    )
                )
                if reply is None or reply.message_type == MessageType.ERROR:
                    detail = reply.error_name if reply is not None else "no reply"
                    raise ScannerError(f"cannot power-cycle {self.adapter}: {detail}")
        finally:
            bus.disconnect()
