"""python-dbusmock template: the stock `bluez5` mock plus what bleak needs and what bluetoothd does.

Runs under Debian's /usr/bin/python3 (python3-dbusmock), not in the project's venv. Adds:
- `AddLEAdapter(name)`: an adapter with the `Roles` property bleak ≥ 1 requires, and the
  AdvertisementMonitorManager1 interface (passive scanning) when the mock was loaded with
  parameter `passive: True`;
- `Advertise(adapter, address, name, rssi, service_data)`: what bluetoothd does on receiving an
  advert: InterfacesAdded for a new Device1 object (with properly typed `ServiceData` a{sv} of
  byte arrays), PropertiesChanged for a known one;
- `FailStart(adapter, error_name, count)`: the next `count` StartDiscovery calls fail with that
  D-Bus error (e.g. org.bluez.Error.InProgress), for the watchdog tests.
"""

import dbus
from dbusmock import OBJECT_MANAGER_IFACE, mockobject
from dbusmock.templates import bluez5
from dbusmock.templates.bluez5 import *  # noqa: F403 - the stock template's methods and constants

ADAPTER_IFACE = "org.bluez.Adapter1"
DEVICE_IFACE = "org.bluez.Device1"
MONITOR_MANAGER_IFACE = "org.bluez.AdvertisementMonitorManager1"
MOCK_IFACE = "org.bluez.Mock"

_PASSIVE = {"on": False}
_FAIL = {}


def load(mock, parameters):
    bluez5.load(mock, parameters)
    _PASSIVE["on"] = bool(parameters.get("passive", False))


@dbus.service.method(MOCK_IFACE, in_signature="s", out_signature="s")
def AddLEAdapter(self, name):
    path = bluez5.AddAdapter(self, name, "lintel-test")
    adapter = mockobject.objects[path]
    adapter.props[ADAPTER_IFACE]["Roles"] = dbus.Array(
        ["central", "peripheral"], signature="s", variant_level=1
    )
    adapter.AddMethods(
        ADAPTER_IFACE,
        [
            ("StartDiscovery", "", "", StartDiscovery),
            ("StopDiscovery", "", "", StopDiscovery),
            ("SetDiscoveryFilter", "a{sv}", "", SetDiscoveryFilter),
        ],
    )
    if _PASSIVE["on"]:
        adapter.AddMethods(
            MONITOR_MANAGER_IFACE,
            [("RegisterMonitor", "o", "", ""), ("UnregisterMonitor", "o", "", "")],
        )
    return path


@dbus.service.method(ADAPTER_IFACE, in_signature="", out_signature="")
def StartDiscovery(adapter):
    name = adapter.__dbus_object_path__.rsplit("/", 1)[-1]
    if _FAIL.get(name):
        error, left = _FAIL[name]
        _FAIL[name] = (error, left - 1) if left > 1 else None
        raise dbus.exceptions.DBusException("Operation already in progress", name=error)
    _discovering(adapter, True)


@dbus.service.method(ADAPTER_IFACE, in_signature="", out_signature="")
def StopDiscovery(adapter):
    _discovering(adapter, False)


@dbus.service.method(ADAPTER_IFACE, in_signature="a{sv}", out_signature="")
def SetDiscoveryFilter(adapter, discovery_filter):
    adapter.discovery_filter = discovery_filter  # kept off the properties: a{sv} is not a property


def _discovering(adapter, on):
    adapter.props[ADAPTER_IFACE]["Discovering"] = dbus.Boolean(on, variant_level=1)
    changed = {"Discovering": dbus.Boolean(on, variant_level=1)}
    adapter.EmitSignal(dbus.PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as", [ADAPTER_IFACE, changed, []])


@dbus.service.method(MOCK_IFACE, in_signature="ssi", out_signature="")
def FailStart(self, adapter_name, error_name, count):
    _FAIL[adapter_name] = (error_name, count) if count > 0 else None


@dbus.service.method(MOCK_IFACE, in_signature="sssna{sv}", out_signature="")
def Advertise(self, adapter_name, address, name, rssi, service_data):
    adapter_path = "/org/bluez/" + adapter_name
    path = adapter_path + "/dev_" + address.replace(":", "_").upper()
    data = dbus.Dictionary(
        {str(k): dbus.Array(bytes(v), signature="y") for k, v in service_data.items()},
        signature="sv",
        variant_level=1,
    )
    manager = mockobject.objects["/"]
    if path not in mockobject.objects:
        props = {
            "Address": dbus.String(address, variant_level=1),
            "AddressType": dbus.String("public", variant_level=1),
            "Alias": dbus.String(name or address, variant_level=1),
            "Adapter": dbus.ObjectPath(adapter_path, variant_level=1),
            "Paired": dbus.Boolean(False, variant_level=1),
            "Connected": dbus.Boolean(False, variant_level=1),
            "Trusted": dbus.Boolean(False, variant_level=1),
            "Blocked": dbus.Boolean(False, variant_level=1),
            "LegacyPairing": dbus.Boolean(False, variant_level=1),
            "ServicesResolved": dbus.Boolean(False, variant_level=1),
            "UUIDs": dbus.Array([], signature="s", variant_level=1),
            "RSSI": dbus.Int16(rssi, variant_level=1),
            "ServiceData": data,
        }
        if name:
            props["Name"] = dbus.String(name, variant_level=1)
        self.AddObject(path, DEVICE_IFACE, props, [])
        manager.EmitSignal(
            OBJECT_MANAGER_IFACE,
            "InterfacesAdded",
            "oa{sa{sv}}",
            [dbus.ObjectPath(path), {DEVICE_IFACE: props}],
        )
        return
    device = mockobject.objects[path]
    changed = {"RSSI": dbus.Int16(rssi, variant_level=1), "ServiceData": data}
    device.props[DEVICE_IFACE].update(changed)
    device.EmitSignal(dbus.PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as", [DEVICE_IFACE, changed, []])
