"""The attacker's view of a running gateway (issue 16): a real `lintel run`, mosquitto and a pymodbus
relay module. Anyone can publish on the broker; only the operator key with the lobby's role may open
the lobby. Every attack is refused with its code, the relay never switches for one, no secret or file
content leaves, and the gateway keeps publishing data. (The 100 MB publish is in test_uplink; forged
BLE adverts in tests/drivers/test_ble_bluez.py; the router's every refusal in test_command_auth.)"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers.modbus.simulator import SimulatedRelayModule
from gateway.commands.signing import new_key, public_key_b64, sign
from tests.conftest import gateway_toml
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.command_rig import commanded_gateway
from tests.support.commander import OPERATOR_ID, OPERATOR_KEY, Commander, envelope, operator_toml
from tests.support.configs import commands_toml, door_toml, meter_bus_toml, mqtt_toml, threshold_rule_toml
from tests.support.process import wait_status

INTRUDER_ID = "intruder"
INTRUDER_KEY = new_key()
INTRUDER = {"id": INTRUDER_ID, "public_key": public_key_b64(INTRUDER_KEY), "allow": ["ping"]}
MQTT_PASSWORD = "s3cret-broker-pass"
LOBBY_COIL, GARAGE_COIL = 2, 3


def config_text(tmp_path: Path, broker: int, modbus: int) -> str:
    password_file = tmp_path / "mqtt.pass"
    password_file.write_text(MQTT_PASSWORD + "\n")
    mqtt = mqtt_toml(broker, f'username = "gw-test"\npassword_file = "{password_file}"\n')
    sources = (
        meter_bus_toml(modbus)
        + threshold_rule_toml("m1", 100)
        + door_toml("lobby", coil=LOBBY_COIL, pulse_s=0.5)
        + door_toml("garage", coil=GARAGE_COIL, pulse_s=0.5)
        + commands_toml(["ping", "alarm_ack", "door_pulse", "reload_config"], [INTRUDER])
        + "\n"
        + operator_toml(["ping", "door_pulse", "reload_config"], ["lobby"])
    )
    return gateway_toml(tmp_path / "state", mqtt=mqtt, sources=sources, runtime={"status_interval_s": 0.3})


@dataclass
class Target:
    tmp_path: Path
    config: Path
    commander: Commander
    collector: Collector
    relay: SimulatedRelayModule
    proc: Any

    def attack(self, body: dict[str, Any], key: Any = None, key_id: str | None = None) -> dict[str, Any]:
        """Publish `body` as it stands (signed with `key` if given) and return the gateway's answer."""
        payload = sign(body, key, key_id) if key is not None else body
        self.commander.send_raw(json.dumps(payload).encode())
        return self.commander.result_for(body["id"])

    def switched(self, coil: int) -> list[bool]:
        """The writes to a coil after the start-up switch-off."""
        return [on for _, c, on in self.relay.switches if c == coil][1:]


@pytest.fixture
def target(tmp_path: Path, broker: Mosquitto) -> Iterator[Target]:
    def alarm_raised(s: dict[str, Any]) -> bool:  # the overload rule raises alarm 1 at once
        return bool(s["uplink"]["state"] == "connected" and s["alarms"])

    with commanded_gateway(tmp_path, broker.port, config_text, topic="lintel/#", ready=alarm_raised) as gw:
        yield Target(tmp_path, gw.config, gw.commander, gw.collector, gw.relay, gw.proc)


class Listener:
    """A local HTTP-ish listener an attacker would point a camera URL at: records any connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(1)
            try:
                self.received.append(conn.recv(65536))
            except OSError:
                self.received.append(b"")
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.sock.close()


def test_only_the_keyholder_opens_only_their_door(target: Target) -> None:
    refused: dict[str, str] = {}

    def expect(code: str, body: dict[str, Any], key: Any = None, key_id: str | None = None) -> None:
        answer = target.attack(body, key, key_id)
        assert answer["outcome"] == "rejected" and answer["code"] == code, answer
        refused[code] = answer["reason"]

    lobby = {"door": "lobby"}
    expect("unsigned", envelope("door_pulse", lobby))
    expect("door_not_allowed", envelope("door_pulse", {"door": "garage"}), OPERATOR_KEY, OPERATOR_ID)
    expect(
        "wrong_gateway", envelope("door_pulse", lobby, gateway_id="gw-next-door"), OPERATOR_KEY, OPERATOR_ID
    )
    expect("not_allowed", envelope("door_pulse", lobby), INTRUDER_KEY, INTRUDER_ID)
    expect("unknown_key", envelope("door_pulse", lobby), new_key(), "stranger")
    expect("bad_signature", envelope("door_pulse", lobby), new_key(), OPERATOR_ID)  # a forged key
    tampered = sign(envelope("door_pulse", {"door": "garage"}), OPERATOR_KEY, OPERATOR_ID)
    tampered["args"] = lobby  # signed for the garage, sent for the lobby
    expect("bad_signature", tampered)
    expect("malformed", envelope("ping", by="night-guard"), OPERATOR_KEY, OPERATOR_ID)  # `by` is no claim
    assert target.switched(LOBBY_COIL) == [] and target.switched(GARAGE_COIL) == []

    # Counting alarm ids acknowledges nothing: unsigned, or signed by a key without the role.
    for alarm_id in ("1", "2", "3", "4"):
        expect("unsigned", envelope("alarm_ack", {"alarm_id": alarm_id}))
        expect("not_allowed", envelope("alarm_ack", {"alarm_id": alarm_id}), INTRUDER_KEY, INTRUDER_ID)
    status = wait_status(target.config, lambda s: bool(s["alarms"]))
    assert not any(a["acked"] for a in status["alarms"])

    # A replay of the keyholder's own command is refused, the original works once.
    good = sign(envelope("door_pulse", lobby), OPERATOR_KEY, OPERATOR_ID)
    target.commander.send_raw(json.dumps(good).encode())
    assert target.commander.result_for(good["id"])["outcome"] == "ok"
    first = target.commander.count()
    target.commander.send_raw(json.dumps(good).encode())
    deadline = time.monotonic() + 10
    while target.commander.count() == first and time.monotonic() < deadline:
        time.sleep(0.02)
    replayed = [r for r in target.commander.results if r.get("correlation_id") == good["id"]]
    assert [r["outcome"] for r in replayed] == ["ok", "rejected"] and replayed[1]["code"] == "replayed"
    assert replayed[0]["by"] == OPERATOR_ID
    assert target.switched(LOBBY_COIL) == [True, False]  # the keyholder's one pulse, nothing else
    assert target.switched(GARAGE_COIL) == []
    refusals = wait_status(target.config, lambda s: s["commands"]["refusals"])["commands"]["refusals"]
    assert set(refusals) <= {
        "unsigned",
        "door_not_allowed",
        "wrong_gateway",
        "not_allowed",
        "unknown_key",
        "bad_signature",
        "malformed",
        "replayed",
    }


def test_a_remote_reload_cannot_escalate_or_leak(target: Target) -> None:
    listener = Listener()
    text = target.config.read_text()
    try:
        # widen [commands] to give itself more
        wider = text.replace(
            'allow = ["ping", "door_pulse", "reload_config"]\ndoors = ["lobby"]',
            'allow = ["ping", "door_pulse", "reload_config"]\ndoors = ["*"]',
        )
        assert wider != text
        # a camera whose password is the broker's and whose URL is the attacker's listener
        camera = (
            '\n[[sources]]\nid = "cam-x"\ntype = "camera"\n'
            f'url = "http://127.0.0.1:{listener.port}/exfil"\nusername = "x"\n'
            f'password_file = "{target.tmp_path / "mqtt.pass"}"\n'
        )
        shadow = text.replace(
            f'password_file = "{target.tmp_path / "mqtt.pass"}"', 'password_file = "/etc/shadow"'
        )
        attempts = {"commands": wider, "sources": text + camera}
        for section, config in attempts.items():
            body = envelope("reload_config", {"config_toml": config})
            answer = target.attack(body, OPERATOR_KEY, OPERATOR_ID)
            assert answer["outcome"] == "rejected", answer
            assert answer["reason"].startswith(f"not tunable remotely: {section}"), answer
        assert shadow != text
        answer = target.attack(envelope("reload_config", {"config_toml": shadow}), OPERATOR_KEY, OPERATOR_ID)
        assert answer["outcome"] == "rejected" and answer["reason"].startswith("not tunable remotely: mqtt")
        assert "shadow" not in answer["reason"]  # nothing said about a file it named
        # The door the key may not open stays closed; its role did not widen.
        answer = target.attack(envelope("door_pulse", {"door": "garage"}), OPERATOR_KEY, OPERATOR_ID)
        assert answer["code"] == "door_not_allowed"
        time.sleep(1.0)  # a camera would have connected by now
        assert listener.received == []
    finally:
        listener.close()
    published = json.dumps([m.payload for m in target.collector.snapshot()])
    assert MQTT_PASSWORD not in published and "root:" not in published
    assert target.switched(GARAGE_COIL) == []
    # and the gateway kept publishing data throughout
    seen = len([m for m in target.collector.snapshot() if "/telemetry/" in m.topic])
    assert target.collector.wait_for(
        lambda c: len([m for m in c.snapshot() if "/telemetry/" in m.topic]) > seen, 10
    )


def test_a_reload_tunes_only_the_doors_of_its_key(target: Target) -> None:
    """Issue 27 point 5: a key allowed reload_config (and the lobby) cannot set pulse_s on the garage."""
    text = target.config.read_text()
    garage = 'id = "garage"\npulse_s = 0.5'
    lobby = 'id = "lobby"\npulse_s = 0.5'
    assert garage in text and lobby in text
    longer_garage = text.replace(garage, 'id = "garage"\npulse_s = 30')
    answer = target.attack(
        envelope("reload_config", {"config_toml": longer_garage}), OPERATOR_KEY, OPERATOR_ID
    )
    assert answer["outcome"] == "rejected", answer
    assert "door tunables of garage" in answer["reason"] and "this key's doors: lobby" in answer["reason"]
    longer_lobby = text.replace(lobby, 'id = "lobby"\npulse_s = 0.8')
    answer = target.attack(
        envelope("reload_config", {"config_toml": longer_lobby}), OPERATOR_KEY, OPERATOR_ID
    )
    assert answer["outcome"] == "ok" and answer["result"]["changed"] is True, answer
    status = wait_status(target.config, lambda s: s["config_sha256"] == answer["result"]["config_sha256"])
    assert status["config_sha256"] == answer["result"]["config_sha256"]
