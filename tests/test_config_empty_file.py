"""An empty `*_file` key is a config error naming the key, the value and the fix (exit 78).

`password_file = ""` resolves to the config file's own folder; it used to surface as
`file not found (got /etc/lintel)`, which names neither the empty value nor what to write."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import gateway_toml
from tests.support.configs import toml_entry
from tests.support.process import lintel_output

EMPTY_MQTT_PASSWORD = (
    'mqtt.password_file: empty file name (got ""); expected the path of a readable file holding the '
    "MQTT password (relative to the config file's folder), or no password_file key"
)


@pytest.mark.parametrize("command", ["run", "check-config"])
def test_an_empty_mqtt_password_file_names_the_key_the_value_and_the_fix(
    tmp_path: Path, command: str
) -> None:
    config = tmp_path / "lintel.toml"
    mqtt = {"url": "mqtt://127.0.0.1:1883", "username": "gw", "password_file": ""}
    config.write_text(gateway_toml(tmp_path / "state", mqtt=mqtt))
    done = lintel_output(command, "-c", str(config))
    assert done.returncode == 78, done.stderr + done.stdout
    said = done.stderr + done.stdout
    assert EMPTY_MQTT_PASSWORD in said, said
    assert str(tmp_path) + '"' not in said  # not the config's folder as if it had been named
    assert "file not found" not in said, said


@pytest.mark.parametrize("key", ["ca_file", "cert_file", "key_file"])
def test_every_empty_mqtt_file_key_is_refused(tmp_path: Path, key: str) -> None:
    config = tmp_path / "lintel.toml"
    mqtt = {"url": "mqtts://127.0.0.1:8883", "ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "k.pem"}
    config.write_text(gateway_toml(tmp_path / "state", mqtt={**mqtt, key: " "}))
    done = lintel_output("check-config", "-c", str(config))
    assert done.returncode == 78, done.stderr + done.stdout
    assert f'mqtt.{key}: empty file name (got " "); expected the path of a readable PEM file' in done.stdout


def test_an_empty_relay_password_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "lintel.toml"
    relay = {
        "type": "shelly_gen2",
        "url": "http://127.0.0.1",
        "device_id": "shellyplus1-1",
        "password_file": "",
    }
    doors = "\n" + toml_entry("doors", {"id": "lobby", "relay": relay})
    config.write_text(gateway_toml(tmp_path / "state", sources=doors))
    done = lintel_output("check-config", "-c", str(config))
    assert done.returncode == 78, done.stderr + done.stdout
    assert (
        'doors[0].relay.password_file: empty file name (got ""); expected the path of a readable file '
        "holding the relay device's password (relative to the config file's folder), or no password_file key"
    ) in done.stdout, done.stdout
