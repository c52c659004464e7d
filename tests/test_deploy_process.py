"""Signed config deployments, for real: `lintel run`, mosquitto with passwords, a pymodbus bus.

The gateway reads a meter all along; every test ends by counting that every accepted message
reached the broker (seqs 1..max without a gap) and that the gateway still answers a ping.
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config.secrets import GatewayKey, seal
from tests.support.commander import (
    envelope,
)
from tests.support.configs import door_toml, meter_bus_toml, source_toml
from tests.support.deploy_rig import (
    DEPLOY_TOPIC,
    GUARD_KEY,
    NEW_PASSWORD,
    NEW_USER,
    PROBATION_S,
    USER,
    Rig,
    set_password,
)
from tests.support.mjpeg_server import MjpegServer, jpeg
from tests.support.notify import NotifySocket
from tests.support.process import lintel, lintel_output


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def _no_gap(rig: Rig) -> None:
    seqs = {m.payload["seq"] for m in rig.collector.data() if m.topic != DEPLOY_TOPIC}
    assert seqs and seqs == set(range(1, max(seqs) + 1)), (
        f"missing seqs: {sorted(set(range(1, max(seqs) + 1)) - seqs)}"
    )


def test_a_good_deployment_adds_a_meter_and_a_door_and_rotates_the_password(rig: Rig) -> None:
    # The broker learns the new credentials first (mosquitto drops sessions whose password no longer
    # holds when it re-reads the file: a rotation adds a user, then retires the old one).
    set_password(rig.passwd, NEW_PASSWORD, NEW_USER, create=False)
    assert rig.broker.proc is not None
    rig.broker.proc.send_signal(1)  # SIGHUP: mosquitto re-reads its password file
    text = f"""
[mqtt]
url = "mqtt://127.0.0.1:{rig.broker.port}"
username = "{NEW_USER}"
password_secret = "mqtt"
reconnect_initial_s = 0.2
reconnect_max_s = 1
"""
    meters = [
        {"id": m, "unit": unit, "profile": "eastron_sdm120", "read": ["power_w"]}
        for m, unit in (("m1", 1), ("m2", 2))
    ]
    endpoint = f"tcp://127.0.0.1:{rig.modbus.port}"
    text += source_toml("modbus", "bus-1", "meters", meters, endpoint=endpoint, interval_s=0.5)
    text += door_toml("lobby", pulse_s=1, timeout_ms=300)
    body = rig.signed(rig.deployment(text, secrets={"mqtt": NEW_PASSWORD}))
    sent = time.monotonic()
    rig.publish(body)
    assert rig.outcome(1, timeout=10 + PROBATION_S + 20) == "config_applied", rig.events("config_rolled_back")
    took = time.monotonic() - sent
    assert took < 10 + PROBATION_S, f"applied after {took:.1f} s"
    applied = rig.events("config_applied")[-1]
    assert applied["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert rig.collector.wait_for(lambda c: any(m.payload.get("source_id") == "m2" for m in c.data()), 15)
    status = rig.status()
    assert status["config"]["origin"] == "deployment v1" and status["config"]["version"] == 1
    assert status["lanes"]["doors"]["doors"][0]["relay"] == "released"
    assert rig.last_birth()["config"]["version"] == 1
    assert rig.ping()["outcome"] == "ok"
    # Tunables now come with deployments; a local edit (then SIGHUP) still wins, by a restart.
    refused = rig.commander.call(envelope("reload_config", {"config_toml": rig.config.read_text()}))
    assert refused["outcome"] == "rejected" and "runs deployment v1" in refused["reason"], refused
    births = rig.births()
    rig.config.write_text(
        rig.config.read_text().replace("status_interval_s = 0.2", "status_interval_s = 0.3")
    )
    rig.proc.send_signal(signal.SIGHUP)
    assert rig.collector.wait_for(lambda _c: bool(rig.events("config_diverged")), 30)
    assert rig.collector.wait_for(lambda _c: rig.births() > births, 30)
    assert rig.last_birth()["config"]["origin"] == "local"
    _no_gap(rig)
    # The secret appears in no log, status, outbox row or message.
    state = rig.tmp_path / "state"
    rig.proc.terminate()
    out, err = rig.proc.communicate(timeout=30)
    secret = NEW_PASSWORD.encode()
    assert secret not in out + err
    assert secret not in (state / "run" / "status.json").read_bytes()
    for db in state.glob("*.db*"):
        assert secret not in db.read_bytes(), db
    for m in rig.collector.snapshot():
        assert NEW_PASSWORD not in json.dumps(m.payload)
    rig.collector.stop()  # the bundle's doctor publishes a probe that is not a gateway message
    bundle = rig.tmp_path / "bundle.tar.gz"
    made = lintel_output("bundle", "-c", str(rig.config), "-o", str(bundle), timeout=120)
    assert made.returncode == 0, made.stderr
    with tarfile.open(bundle) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member)
            assert data is None or secret not in data.read(), member.name
    assert all(NEW_PASSWORD.encode() not in raw for _, raw, _ in rig.collector.bridged)


def _rolled_back(rig: Rig, text: str, secrets: dict[str, str] | None = None) -> str:
    body = rig.signed(rig.deployment(text, secrets=secrets))
    rig.publish(body)
    assert rig.commander.result_for(body["id"], 30)["outcome"] == "ok"  # checked, staged: restarting
    version = body["args"]["version"]
    assert rig.outcome(version, timeout=60) == "config_rolled_back"
    return str(next(e["reason"] for e in rig.events("config_rolled_back") if e["version"] == version))


def _refused(rig: Rig, body: dict[str, Any], topic: str = DEPLOY_TOPIC) -> dict[str, Any]:
    payload = json.dumps(body).encode()
    rig.commander.client.publish(topic, payload, qos=1).wait_for_publish(5)
    result = rig.commander.result_for(body["id"], 30)
    assert result["outcome"] == "rejected", result
    return result


def test_twenty_bad_deployments_are_each_refused_or_rolled_back(rig: Rig, tmp_path: Path) -> None:
    bus = meter_bus_toml(rig.modbus.port)
    codes: list[str] = []
    # Refused before anything is built: who sent it, then the document itself.
    unsigned = rig.deployment("[log]\nlevel = 'debug'\n")
    codes.append(_refused(rig, unsigned)["code"])
    codes.append(
        _refused(rig, rig.signed(rig.deployment("[log]\nlevel = 'debug'\n"), GUARD_KEY, "guard"))["code"]
    )
    tampered = rig.signed(rig.deployment("[log]\nlevel = 'debug'\n"))
    tampered["args"]["config_toml"] = "[log]\nlevel = 'error'\n"
    codes.append(_refused(rig, tampered)["code"])
    assert codes == ["unsigned", "not_allowed", "bad_signature"]
    other_gateway = GatewayKeyForTest(tmp_path).public
    documents = {
        "invalid TOML": ("[mqtt\nurl = 'x'\n", None, "line 1"),
        "unknown key": ("[mqtt]\nkeepalive = 10\n", None, "mqtt.keepalive"),
        "a local password file": (
            "[mqtt]\npassword_file = '/etc/shadow'\n",
            None,
            "may not name a local file",
        ),
        "a local CA file": (
            "[mqtt]\nca_file = '/etc/ssl/private/key.pem'\n",
            None,
            "may not name a local file",
        ),
        "another state folder": ("[gateway]\nstate_dir = '/tmp/x'\n", None, "may not name a local file"),
        "another outbox file": ("[outbox]\npath = '/tmp/o.db'\n", None, "may not name a local file"),
        "a camera that is a file": (
            "[[sources]]\nid = 'c'\ntype = 'camera'\nurl = 'file:///etc/passwd'\n",
            None,
            "may not name a local file",
        ),
        "a bus that is a file": (
            "[[sources]]\nid = 'b'\ntype = 'modbus'\nendpoint = 'rtu:///etc/passwd'\n"
            "[[sources.meters]]\nid = 'x'\nunit = 1\nprofile = 'eastron_sdm120'\n",
            None,
            "may not name a local file",
        ),
        "new operator keys": ("[commands]\nallow = ['ping', 'door_pulse']\n", None, "not deployable"),
        "another gateway": ("[gateway]\nid = 'gw-other'\n", None, "another gateway"),
        "a secret sealed to another gateway": (
            "[mqtt]\nusername = 'x'\npassword_secret = 'mqtt'\n",
            {"mqtt": seal(other_gateway, "mqtt", "pw")},
            "does not open",
        ),
    }
    for name, (text, sealed, words) in documents.items():
        body = rig.signed(rig.deployment(text))
        if sealed:
            body = rig.signed({**body, "args": {**body["args"], "secrets": sealed}})
        result = _refused(rig, body)
        assert result["code"] == "refused" and words in result["reason"], (name, result)
        version = body["args"]["version"]
        assert rig.outcome(version) == "config_rejected", name
    # Stale and replayed: a version not above the last handled, as a replaying attacker sends it.
    assert (
        "stale" in _refused(rig, rig.signed(rig.deployment("[log]\nlevel = 'debug'\n", version=2)))["reason"]
    )
    again = rig.signed(rig.deployment("[log]\nlevel = 'debug'\n", version=rig.version))
    assert "replayed" in _refused(rig, again, topic="lintel/site-a/gw-test/command")["reason"]
    # Rolled back after a restart: valid documents that do not work on this site.
    mqtt_with = (
        f"[mqtt]\nurl = 'mqtt://127.0.0.1:{rig.broker.port}'\nusername = '{USER}'\npassword_secret = 'mqtt'\n"
    )
    reasons = [
        _rolled_back(rig, mqtt_with, {"mqtt": "not-the-password"}),
        _rolled_back(rig, f"[mqtt]\nurl = 'mqtt://127.0.0.1:{_closed_port(rig)}'\n"),
        _rolled_back(
            rig,
            bus + "\n[[sources]]\nid = 'bus-2'\ntype = 'modbus'\nendpoint = 'rtu:///dev/ttyLINTEL-missing'\n"
            "[[sources.meters]]\nid = 'm9'\nunit = 1\nprofile = 'eastron_sdm120'\n",
        ),
        _rolled_back(rig, bus + CAMERA.format(url=rig_camera(rig).url())),
        _rolled_back(rig, bus + door_toml("lobby", pulse_s=1, unit=77, timeout_ms=200)),
    ]
    assert "broker was not reached" in reasons[0] and "broker was not reached" in reasons[1], reasons
    assert "bus-2/m9 offline" in reasons[2], reasons
    assert "cam-1 not heard" in reasons[3] and rig.servers[0].connections >= 1, reasons  # it said 401
    assert "door lobby" in reasons[4], reasons
    # Reachable afterwards, on the config that worked, and nothing accepted was lost.
    assert rig.ping()["outcome"] == "ok"
    assert rig.status()["config"]["origin"] == "local"
    _no_gap(rig)


CAMERA = """
[[sources]]
id = "cam-1"
type = "camera"
url = "{url}"
username = "admin"
"""


def _closed_port(rig: Rig) -> int:
    """A loopback port that refuses connections for the whole test: bound, never listening, so no
    other test's broker can take it meanwhile (a port merely free now could be)."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    rig.held.append(held)
    return int(held.getsockname()[1])


class GatewayKeyForTest:
    def __init__(self, tmp_path: Path) -> None:
        self.public = GatewayKey.load_or_create(tmp_path / "other-gateway").public_b64


def rig_camera(rig: Rig) -> MjpegServer:
    server = MjpegServer(jpeg(320, 240), username="admin", password="camera-pass").start()
    rig.servers.append(server)
    return server


def _on_probation(rig: Rig, version: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            config = rig.status()["config"]
            if config["on_probation"] and config["version"] == version:
                return
        except (OSError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.05)
    raise AssertionError("the deployment never went on probation")


LONG_PROBATION = "[deploy]\nprobation_s = 60\n\n[log]\nlevel = 'debug'\n"  # applied without a restart
# The same with a broker setting changed: applied by a restart.
LONG_PROBATION_RESTART = LONG_PROBATION + "\n[mqtt]\nkeepalive_s = 25\n"


def test_a_local_edit_during_a_deployment_wins_and_is_reported(rig: Rig) -> None:
    body = rig.signed(rig.deployment(LONG_PROBATION))
    rig.publish(body)
    _on_probation(rig, 1)
    births = rig.births()
    # The person on site edits the local file while the deployment is on probation.
    rig.config.write_text(
        rig.config.read_text().replace("status_interval_s = 0.2", "status_interval_s = 0.25")
    )
    assert rig.outcome(1, timeout=30) == "config_diverged"
    assert "local config file was edited" in rig.events("config_diverged")[-1]["reason"]
    assert rig.collector.wait_for(lambda _c: rig.births() > births, 30)
    config = rig.last_birth()["config"]
    assert config["origin"] == "local" and config["version"] is None
    assert rig.ping()["outcome"] == "ok"
    _no_gap(rig)


def test_kill_9_during_probation_comes_back_on_the_config_that_worked(tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    stop = threading.Event()

    def listen() -> None:  # datagrams arrive at every status write: read them as they come
        while not stop.is_set():
            notify.collect(0.2)

    listener = threading.Thread(target=listen)
    listener.start()
    rig = Rig(tmp_path, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        pid = rig.proc.pid
        rig.publish(rig.signed(rig.deployment(LONG_PROBATION_RESTART)))
        _on_probation(rig, 1)
        # The deployment's restart is a reload for systemd, in the same process (MAINPID stays):
        # never STOPPING, which would make systemd stop the unit.
        assert rig.status()["pid"] == pid
        kinds = [k for m in list(notify.messages) for k in ("READY", "RELOADING", "STOPPING") if k in m]
        assert kinds == ["READY", "RELOADING", "READY"], kinds
        assert all(m["MAINPID"] == str(pid) for m in list(notify.messages) if "READY" in m)
        rig.proc.kill()  # a power cut, as far as the gateway can tell
        rig.proc.wait(10)
        rig.proc = lintel("run", "-c", str(rig.config))
        assert rig.outcome(1, timeout=30) == "config_rolled_back"
        assert "stopped during probation" in rig.events("config_rolled_back")[-1]["reason"]
        assert rig.ping()["outcome"] == "ok"
        assert rig.status()["config"]["origin"] == "local"
        # Still retained on the broker, the deployment is not tried a second time.
        assert rig.events("config_applied") == []
        _no_gap(rig)
    finally:
        rig.close()
        stop.set()
        listener.join(10)
        notify.close()


def test_a_deployed_camera_opens_with_its_sealed_password_which_no_log_shows(rig: Rig) -> None:
    password = "camera-Pa55-Qw7"
    server = MjpegServer(jpeg(320, 240), username="admin", password=password).start()
    rig.servers.append(server)
    text = meter_bus_toml(rig.modbus.port) + CAMERA.format(url=server.url()) + 'password_secret = "cam-1"\n'
    text += "\n[deploy]\nprobation_s = 5\n"  # a camera's first frame, on a loaded machine
    rig.publish(rig.signed(rig.deployment(text, secrets={"cam-1": password})))
    assert rig.outcome(1, timeout=60) == "config_applied", rig.events("config_rolled_back")
    assert rig.events("camera_online")
    rig.proc.terminate()
    out, err = rig.proc.communicate(timeout=30)
    assert password.encode() not in out + err
    assert password.encode() not in (rig.tmp_path / "state" / "run" / "status.json").read_bytes()
    assert all(password not in json.dumps(m.payload) for m in rig.collector.snapshot())


def test_a_deployment_of_sources_only_is_applied_without_a_restart(rig: Rig) -> None:
    births = rig.births()
    text = meter_bus_toml(rig.modbus.port) + (  # bus-1 gains a second meter
        '\n[[sources.meters]]\nid = "m2"\nunit = 2\nprofile = "eastron_sdm120"\nread = ["power_w"]\n'
    )
    body = rig.signed(rig.deployment(text))
    rig.publish(body)
    assert rig.commander.result_for(body["id"], 30)["result"]["state"] == "on probation"
    assert rig.outcome(1, timeout=30) == "config_applied"
    assert rig.events("config_reloaded"), "applied by the reloader"
    assert rig.collector.wait_for(lambda c: any(m.payload.get("source_id") == "m2" for m in c.data()), 15)
    assert rig.births() == births  # never disconnected: no restart
    assert rig.status()["config"]["origin"] == "deployment v1"
    _no_gap(rig)
