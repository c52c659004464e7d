"""`lintel doctor` against real peers: mosquitto with TLS and passwords (certificates from a test
CA), a pymodbus RTU server behind a paced pty line, python-dbusmock playing BlueZ, gst-rtsp-server,
the real models. A clean site is all ✓ (⚠ only where this machine genuinely lacks the thing: no
systemd, no NTP, no daemon running); each injected fault is one ✗ on the right line with the
right fix; with the gateway running, doctor talks to it and leaves its serial port alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drivers.modbus.simulator import SimulatedMeter
from gateway.core import Event, ManualClock, Reading
from gateway.diagnostics.context import Context, wall_ms
from gateway.diagnostics.report import Finding, Level
from gateway.diagnostics.runner import run_doctor
from gateway.lanes.faces.config import FacesSection
from gateway.lanes.faces.keys import create_key
from gateway.storage.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.upstream.encode import Encoder, Topics
from tests.conftest import gateway_toml
from tests.support.bluez import MockBluez
from tests.support.broker import Mosquitto, free_port
from tests.support.configs import door_toml, source_toml
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel, lintel_output, wait_status
from tests.support.rtsp import RtspServer
from tests.support.serial_line import PacedLine
from tests.support.tls import Pki, issue_server_cert, make_pki

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models" / "onnx"
PASSWORD = "right-password"
# What a container or CI machine genuinely lacks; anything else must be ✓ on a clean site.
ABSENT_HERE = {"daemon", "systemd", "clock"}

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    p = make_pki(tmp_path_factory.mktemp("pki"))
    # make_pki's certificates last 2 days: doctor rightly warns about those; a clean site has a year
    issue_server_cert(p, "lasting", ["127.0.0.1", "localhost"], valid_from_days=-1, valid_days=365)
    issue_server_cert(p, "expired", ["127.0.0.1"], valid_from_days=-30, valid_days=10)
    issue_server_cert(p, "elsewhere", ["broker.elsewhere.example"], valid_from_days=-1, valid_days=30)
    return p


def tls_broker(tmp_path: Path, pki: Pki, cert: str = "lasting") -> Mosquitto:
    passwd = tmp_path / "passwd"
    if not passwd.exists():
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "gw-test", PASSWORD], check=True)
    return Mosquitto(
        tmp_path,
        allow_anonymous=False,
        extra=[
            f"certfile {pki.dir / (cert + '.pem')}",
            f"keyfile {pki.dir / (cert + '.key')}",
            f"password_file {passwd}",
        ],
    ).start()


@dataclass
class Site:
    """A building's worth of real peers and the config that points at them."""

    tmp: Path
    pki: Pki
    broker: Mosquitto
    line: PacedLine
    meters: ModbusThread
    bluez: MockBluez | None = None
    rtsp: RtspServer | None = None
    # the camera: the RTSP server when there is one, else a still picture (quick to open)
    picture: Path = ROOT / ".cache" / "media" / "darknet" / "dog.jpg"
    ca: Path = field(init=False)
    password: str = PASSWORD
    model_dir: Path = MODELS
    key_file: Path = field(init=False)
    state_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.ca = self.pki.ca
        self.key_file = self.tmp / "faces.key"
        self.state_dir = self.tmp / "state"

    def config(self, *, only: set[str] | None = None) -> Path:
        """The config file; `only` keeps just those parts (mqtt, serial, ble, camera, faces)."""
        want = only or {"mqtt", "serial", "ble", "camera", "faces"}
        assert self.bluez or "ble" not in want
        pw = self.tmp / "mqtt.pass"
        pw.write_text(self.password + "\n")
        pw.chmod(0o640)  # as the README installs it (a wider mode is a warning)
        mqtt = ""
        if "mqtt" in want:
            mqtt = (
                f'url = "mqtts://127.0.0.1:{self.broker.port}"\nusername = "gw-test"\n'
                f'password_file = "{pw}"\nca_file = "{self.ca}"\n'
            )
        sources = ""
        if "serial" in want or "faces" in want:
            meters = [
                {"id": f"meter-10{u}", "unit": u, "profile": "eastron_sdm120", "read": ["power_w"]}
                for u in (1, 2)
            ]
            endpoint = f"rtu://{self.line.gateway_port}?baudrate=9600"
            sources += source_toml(
                "modbus", "bus-1", "meters", meters, endpoint=endpoint, interval_s=1, timeout_ms=300
            )
        if "ble" in want:
            sensor = {"id": "door-back", "address": "E4:AA:EC:81:21:AE"}
            sources += source_toml("ble", "ble-hall", "sensors", [sensor], adapter="hci0")
        if "camera" in want or "faces" in want:
            sources += f"""
[[sources]]
id = "cam-door"
type = "camera"
url = "{f"rtsp://127.0.0.1:{self.rtsp.port}/cam" if self.rtsp else self.picture}"
open_timeout_s = 3
read_timeout_s = 3
"""
        if "faces" in want:
            sources += (
                f"""
[inference]
model_dir = "{self.model_dir}"
"""
                + door_toml()
                + f"""

[faces]
key_file = "{self.key_file}"

[[face_access]]
id = "lobby-face"
camera = "cam-door"
door = "lobby"
"""
            )
        text = gateway_toml(self.state_dir, mqtt=mqtt, sources=sources, runtime={"status_interval_s": 0.3})
        path = self.tmp / "lintel.toml"
        path.write_text(text)
        return path


@pytest.fixture
def site(tmp_path: Path, pki: Pki) -> Iterator[Site]:
    """The broker and a serial line of two meters; `full_site` adds BlueZ and an RTSP camera."""
    started: list[object] = []
    try:
        broker = tls_broker(tmp_path, pki)
        started.append(broker)
        line = PacedLine(tmp_path, baudrate=9600)
        line.start()
        started.append(line)
        meters = ModbusThread([SimulatedMeter(1, "eastron_sdm120"), SimulatedMeter(2, "eastron_sdm120")])
        meters.start_serial(str(line.server_port))
        started.append(meters)
        s = Site(tmp_path, pki, broker, line, meters)
        create_key(s.key_file)
        s.state_dir.mkdir()
        OutboxStore(s.state_dir / "outbox.db").close(clean=True)
        yield s
    finally:
        for peer in reversed(started):
            peer.stop()  # type: ignore[attr-defined]


@pytest.fixture
def bluez(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MockBluez]:
    mock = MockBluez(tmp_path / "bluez", passive=True)
    try:
        mock.start()
        mock.add_adapter("hci0")
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", mock.address)
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def rtsp() -> Iterator[RtspServer]:
    server = RtspServer()
    yield server
    server.stop()


@pytest.fixture
def full_site(site: Site, bluez: MockBluez, rtsp: RtspServer) -> Site:
    site.bluez, site.rtsp = bluez, rtsp
    return site


def doctor(config: Path, **overrides: object) -> list[Finding]:
    return run_doctor(Context(config_path=str(config), timeout_s=3, **overrides))  # type: ignore[arg-type]


def lines(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check or f.check.startswith(check + ".")]


def the_failure(findings: list[Finding], check: str, detail: str, fix: str) -> Finding:
    """Exactly the expected ✗: on `check`, saying `detail`, with `fix` in its advice."""
    failed = [f for f in findings if f.level == Level.FAIL]
    hit = [f for f in failed if f.check.startswith(check)]
    assert hit, f"no ✗ on {check}; failures: {failed}"
    assert detail in hit[0].detail, hit[0]
    assert fix in hit[0].fix, hit[0]
    return hit[0]


# -- a clean site ---------------------------------------------------------------------------------


def test_a_clean_site_is_all_green(full_site: Site) -> None:
    site = full_site
    findings = doctor(site.config())
    not_ok = [f for f in findings if f.level != Level.OK and f.check not in ABSENT_HERE]
    assert not not_ok, not_ok
    for check in ("config", "state_dir", "outbox", "broker.dns", "broker.tcp", "broker.tls", "broker.auth"):
        assert lines(findings, check), check
    assert "came back" in lines(findings, "broker.round_trip")[0].detail
    assert "valid until" in lines(findings, "broker.tls")[0].detail
    assert {f.check for f in lines(findings, "meter")} == {"meter.meter-101", "meter.meter-102"}
    assert "passive scanning available" in lines(findings, "ble.hci0")[0].detail
    assert "320x240" in lines(findings, "camera.cam-door")[0].detail
    assert {f.check for f in lines(findings, "model")} == {
        "model.yunet-2023mar",
        f"model.{FacesSection().embedder}",
    }
    assert lines(findings, "faces.key")[0].level == Level.OK
    for f in findings:
        assert f.level == Level.OK or f.fix, f  # every ⚠ says what to do


# -- injected faults: each one ✗ with the right fix -----------------------------------------------


def test_wrong_ca(site: Site) -> None:
    site.ca = site.pki.other_ca
    f = the_failure(doctor(site.config(only={"mqtt"})), "broker.tls", "does not trust", "mqtt.ca_file")
    assert "lintel test ca" in f.detail  # names the authority that did sign it


def test_expired_broker_certificate(site: Site) -> None:
    site.broker.stop()
    site.broker = tls_broker(site.tmp, site.pki, cert="expired")
    f = the_failure(doctor(site.config(only={"mqtt"})), "broker.tls", "expired on", "must be renewed")
    assert "certificate for 127.0.0.1" in f.detail


def test_certificate_for_another_host(site: Site) -> None:
    site.broker.stop()
    site.broker = tls_broker(site.tmp, site.pki, cert="elsewhere")
    the_failure(
        doctor(site.config(only={"mqtt"})),
        "broker.tls",
        "is for broker.elsewhere.example, not for 127.0.0.1",
        "in mqtt.url",
    )


def test_bad_password(site: Site) -> None:
    site.password = "wrong-password"
    the_failure(doctor(site.config(only={"mqtt"})), "broker.auth", "refused the login", "password")


def test_broker_down(site: Site) -> None:
    site.broker.stop()
    findings = doctor(site.config(only={"mqtt"}))
    the_failure(findings, "broker.tcp", "refuses connections", "the broker is down")
    assert not lines(findings, "broker.tls")  # the first ✗ is the thing to fix


def test_serial_port_held_by_another_program(site: Site) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys, time; f = open({str(site.line.gateway_port)!r}, 'rb'); "
         "print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        findings = doctor(site.config(only={"serial"}))
        f = the_failure(findings, "serial.", f"pid {holder.pid}", f"sudo kill {holder.pid}")
        assert "held by another program" in f.detail
        # the meters are not read over a line someone else is on
        assert not lines(findings, "meter")
    finally:
        holder.kill()
        holder.wait()


def test_serial_port_missing(site: Site) -> None:
    site.line.unplug()
    try:
        the_failure(doctor(site.config(only={"serial"})), "serial.", "is not there", "plug in the USB RS-485")
    finally:
        site.line.replug()


def test_service_user_without_access_to_the_port(site: Site) -> None:
    real = os.path.realpath(site.line.gateway_port)
    os.chmod(real, 0o600)  # the pty belongs to root; the service user is someone else
    f = the_failure(
        doctor(site.config(only={"serial"}), service_user="nobody"),
        "serial.",
        "'nobody' cannot read",
        "usermod -aG",
    )
    assert "mode 600" in f.detail


def test_dead_meter(site: Site) -> None:
    site.line.drop_units.add(2)
    findings = doctor(site.config(only={"serial"}))
    the_failure(findings, "meter.meter-102", "does not answer", "its Modbus address is 2")
    assert lines(findings, "meter.meter-101")[0].level == Level.OK  # a dead meter costs only itself


def test_camera_down(site: Site, rtsp: RtspServer) -> None:
    site.rtsp = rtsp
    rtsp.stop()
    the_failure(
        doctor(site.config(only={"camera"})), "camera.cam-door", "does not open", "power and network cable"
    )


def test_state_dir_unwritable(site: Site) -> None:
    ro = site.tmp / "ro"
    ro.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True)
    assert done.returncode == 0, f"this test mounts a read-only tmpfs and needs root: {done.stderr!r}"
    try:
        site.state_dir = ro
        the_failure(doctor(site.config(only={"mqtt"})), "state_dir", "cannot write", "chown -R lintel")
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_corrupt_model(site: Site) -> None:
    site.model_dir = site.tmp / "models"
    site.model_dir.mkdir()
    for f in MODELS.glob("*.onnx"):
        (site.model_dir / f.name).symlink_to(f)
    broken = site.model_dir / "yunet-2023mar.onnx"
    data = bytearray(broken.read_bytes())
    broken.unlink()
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    findings = doctor(site.config(only={"faces"}))
    the_failure(findings, "model.yunet-2023mar", "is corrupt", "rebuild the models")
    assert lines(findings, f"model.{FacesSection().embedder}")[0].level == Level.OK


def test_face_key_readable_by_others(site: Site) -> None:
    site.key_file.chmod(0o644)
    the_failure(
        doctor(site.config(only={"faces"})), "faces.key", "readable by others (mode 644)", "chmod 600"
    )


def test_face_key_missing(site: Site) -> None:
    site.key_file.unlink()
    the_failure(doctor(site.config(only={"faces"})), "faces.key", "is missing", "faces init-key")


def test_clock_not_set(site: Site) -> None:
    findings = doctor(site.config(only={"mqtt"}), time_ms=lambda: 86_400_000)
    the_failure(findings, "clock", "not set (it reads 1970-01-02", "network time")


def test_ble_adapter_missing(site: Site, bluez: MockBluez) -> None:
    site.bluez = bluez
    bluez.remove_adapter("hci0")
    the_failure(doctor(site.config(only={"ble"})), "ble.hci0", "is not there", "Bluetooth dongle")


def test_ble_adapter_switched_off(site: Site, bluez: MockBluez) -> None:
    site.bluez = bluez
    subprocess.run(
        ["busctl", f"--address={bluez.address}", "set-property", "org.bluez", "/org/bluez/hci0",
         "org.bluez.Adapter1", "Powered", "b", "false"],
        check=True,
    )  # fmt: skip
    the_failure(doctor(site.config(only={"ble"})), "ble.hci0", "switched off", "bluetoothctl power on")


def test_a_day_old_backlog(site: Site) -> None:
    """Messages that waited a day (the writer's clock a day behind) mean the uplink delivers nothing."""
    now_ms = wall_ms()
    clock = ManualClock(now_ms - 26 * 3600 * 1000)
    writer = OutboxWriter(
        OutboxStore(site.state_dir / "outbox.db"),
        Encoder(Topics("lintel", "site-a", "gw-test")),
        clock,
        OutboxLimits(commit_window_s=0.01),
    )
    writer.start()
    for i in range(3):
        writer.submit(Reading("meter-101", "power_w", float(i), clock.time_ms()))
    writer.submit(Event("door-1", "door_forced", clock.time_ms(), {}, "alarm"))
    assert writer.flush()
    writer.stop()
    site.broker.stop()  # the reason it waited
    findings = doctor(site.config(only={"mqtt"}), time_ms=lambda: now_ms)
    f = the_failure(findings, "outbox", "the oldest 26.0 h old", "fix the broker checks above")
    assert f.detail.startswith("2 message(s) waiting"), f  # one telemetry batch and the alarm
    assert lines(findings, "broker.tcp")[0].level == Level.FAIL


def test_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(tmp_path) + '\n[mqtt]\nurl = "http://broker"\n')
    findings = doctor(config)
    the_failure(findings, "config", "unsupported URL scheme", "lintel check-config")
    assert len(findings) == 1  # nothing else can be judged without a config


# -- the command line, and a running gateway ------------------------------------------------------


def test_doctor_with_the_gateway_running_uses_it_and_leaves_the_port_alone(site: Site) -> None:
    config = site.config(only={"mqtt", "serial"})
    gw = lintel("run", "-c", str(config))
    try:
        wait_status(config, lambda s: s.get("uplink", {}).get("state") == "connected", timeout=30)
        out = lintel_output("doctor", "-c", str(config), "--json", "--timeout", "3", timeout=60)
        report = json.loads(out.stdout)
        by_check = {f["check"]: f for f in report["findings"]}
        assert by_check["daemon"]["level"] == "ok" and "answered a ping" in by_check["daemon"]["detail"]
        port = by_check[f"serial.{site.line.gateway_port}"]
        assert port["level"] == "ok" and "in use by the running gateway" in port["detail"], port
        meters = by_check["meters.bus-1"]
        assert meters["level"] == "warn" and "not read directly" in meters["detail"], meters
        assert not [k for k in by_check if k.startswith("meter.")]
        assert by_check["broker.round_trip"]["level"] == "ok"  # its own client id: the gateway stays up
        assert out.returncode == (1 if report["counts"]["fail"] else 0)
        assert report["counts"]["fail"] == 0, report
        status = wait_status(config, lambda s: s.get("uplink", {}).get("state") == "connected")
        assert status["pid"] == gw.pid
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(30)


def test_exit_code_and_human_output(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(tmp_path / "state", mqtt=f'url = "mqtt://127.0.0.1:{port}"'))
    out = lintel_output("doctor", "-c", str(config), "--timeout", "2")
    assert out.returncode == 1, out
    assert f"✗ broker.tcp: 127.0.0.1:{port} refuses connections" in out.stdout
    assert "→ the broker is down" in out.stdout


def test_human_output_prints_data_literally_never_as_markup(tmp_path: Path) -> None:
    """Issue 27 point 8: findings quote section names, paths, URLs and device names; rich must not
    read them as markup ("[mqtt]" vanished; a "[/x]" raised MarkupError)."""
    folder = tmp_path / "site[" / "x][bold]"  # the path reads ".../site[/x][bold]/..."
    folder.mkdir(parents=True)
    config = folder / "lintel.toml"
    config.write_text(gateway_toml(folder / "state"))  # no [mqtt] section
    out = lintel_output("doctor", "-c", str(config), "--timeout", "2")
    assert "Traceback" not in out.stderr and "MarkupError" not in out.stderr, out.stderr
    assert "no [mqtt] section" in out.stdout, out.stdout
    assert "[/x][bold]" in out.stdout, out.stdout  # the folder's name, wherever a finding quotes it
