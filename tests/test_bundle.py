"""`lintel bundle`: everything support needs, and not one secret. A config with a secret in every
place one can be (MQTT password file, TLS client key, inline and file bindkeys, a camera password,
the face gallery key; and, in a config that is not even valid, an operator key and credentials in
URLs) is bundled; every byte of every member is searched for every secret, in every form it could
take (as written, hex, base64), and none is found."""

from __future__ import annotations

import base64
import json
import secrets
import tarfile
from pathlib import Path

from gateway.storage.outbox.store import OutboxStore
from tests.conftest import gateway_toml
from tests.support.broker import free_port
from tests.support.configs import source_toml
from tests.support.process import lintel_output
from tests.support.tls import make_pki


def forms(secret: bytes) -> list[bytes]:
    out = [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret)]
    for line in secret.splitlines():  # a PEM key line by line
        if len(line.strip()) >= 16:
            out.append(line.strip())
    return out


def bundle(config: Path, out: Path) -> dict[str, bytes]:
    done = lintel_output("bundle", "-c", str(config), "-o", str(out), timeout=90)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o077 == 0  # only its owner can read it
    with tarfile.open(out) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    return members


def assert_no_secret(members: dict[str, bytes], secret_values: dict[str, bytes]) -> None:
    for name, data in members.items():
        for what, secret in secret_values.items():
            for form in forms(secret):
                assert form not in data, f"{what} found in {name}"


def test_bundle_holds_the_facts_and_no_secret(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    state = tmp_path / "state"
    state.mkdir()
    values = {
        "mqtt password": f"mqtt-{secrets.token_urlsafe(12)}".encode(),
        "tls client key": pki.client_key.read_bytes(),
        "inline bindkey": secrets.token_hex(16).encode(),
        "bindkey file": secrets.token_hex(16).encode(),
        "camera password": f"cam-{secrets.token_urlsafe(10)}".encode(),
        "face gallery key": secrets.token_bytes(32),
    }
    (tmp_path / "mqtt.pass").write_bytes(values["mqtt password"] + b"\n")
    (tmp_path / "door-front.key").write_bytes(values["bindkey file"] + b"\n")
    (tmp_path / "cam.pass").write_bytes(values["camera password"] + b"\n")
    face_key = state / "faces.key"
    face_key.write_bytes(values["face gallery key"])
    face_key.chmod(0o600)
    # face data and pictures the bundle must leave behind
    (state / "faces.db").write_bytes(b"SQLite format 3\x00 face-template-bytes-" + secrets.token_bytes(64))
    (state / "evidence").mkdir()
    (state / "evidence" / "lane-1.jpg").write_bytes(b"\xff\xd8\xff jpeg-evidence-bytes")
    store = OutboxStore(state / "outbox.db")
    store.close(clean=True)
    # a secret that slipped into what the daemon wrote (a last error quoting a URL) is still caught
    (state / "run").mkdir()
    status = {"pid": 1, "state": "running", "components": [{"name": "cam-lane", "last_error": (
        f"cannot open rtsp://admin:{values['camera password'].decode()}@10.0.0.9/stream")}]}  # fmt: skip
    (state / "run" / "status.json").write_text(json.dumps(status))
    port = free_port()
    sensors = [
        {"id": "door-back", "address": "E4:AA:EC:81:21:AE", "bindkey": values["inline bindkey"].decode()},
        {"id": "door-front", "address": "E4:AA:EC:81:21:AF", "bindkey_file": tmp_path / "door-front.key"},
    ]
    sources = source_toml("ble", "ble-hall", "sensors", sensors, backend="simulated") + source_toml(
        "camera",
        "cam-lane",
        url="rtsp://10.0.0.9/stream",
        username="admin",
        password_file=tmp_path / "cam.pass",
    )
    mqtt = (
        f'url = "mqtts://127.0.0.1:{port}"\nusername = "gw-test"\n'
        f'password_file = "{tmp_path / "mqtt.pass"}"\n'
        f'ca_file = "{pki.ca}"\ncert_file = "{pki.client_cert}"\nkey_file = "{pki.client_key}"'
    )
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(state, mqtt=mqtt, sources=sources))

    members = bundle(config, tmp_path / "support.tar.gz")

    assert_no_secret(members, values)
    for name in members:
        assert not name.endswith((".db", ".jpg", ".png", ".key")), name
    blob = b"".join(members.values())
    assert b"face-template-bytes" not in blob and b"jpeg-evidence-bytes" not in blob
    # what support needs is there
    assert {
        "config.redacted.json",
        "doctor.json",
        "status.json",
        "outbox.json",
        "versions.json",
        "logs.txt",
    } <= set(members)
    cfg = json.loads(members["config.redacted.json"])["config"]
    assert cfg["mqtt"]["password_file"] == str(tmp_path / "mqtt.pass")  # paths stay, contents never
    assert cfg["sources"][0]["sensors"][0]["bindkey"] == "<redacted>"
    assert cfg["gateway"]["id"] == "gw-test"
    doctor = json.loads(members["doctor.json"])
    assert any(f["check"] == "broker.tcp" and f["level"] == "fail" for f in doctor)
    assert "<redacted>" in json.loads(members["status.json"])["components"][0]["last_error"]
    assert json.loads(members["outbox.json"])["classes"]["alarm"]["messages"] == 0
    assert json.loads(members["versions.json"])["packages"]["lintel-gateway"]
    assert members["logs.txt"].strip()  # the journal, or a note saying there is none


def test_an_invalid_config_is_still_bundled_without_its_secrets(tmp_path: Path) -> None:
    values = {
        "url password": f"pw-{secrets.token_urlsafe(10)}".encode(),
        "operator key": base64.b64encode(secrets.token_bytes(32)),
        "camera url password": f"cam-{secrets.token_urlsafe(10)}".encode(),
    }
    text = (
        gateway_toml(tmp_path / "state")
        + f"""
[mqtt]
url = "mqtts://gw:{values["url password"].decode()}@broker.example:8883"

[commands]
allow = ["ping"]

[[commands.operators]]
id = "ops-1"
private_key = "{values["operator key"].decode()}"

[[sources]]
id = "cam"
type = "camera"
url = "rtsp://admin:{values["camera url password"].decode()}@10.0.0.9/live"
"""
    )
    config = tmp_path / "lintel.toml"
    config.write_text(text)
    members = bundle(config, tmp_path / "b.tar.gz")
    assert_no_secret(members, values)
    doctor = json.loads(members["doctor.json"])
    assert doctor[0]["check"] == "config" and doctor[0]["level"] == "fail"
    cfg = json.loads(members["config.redacted.json"])["config"]
    assert cfg["mqtt"]["url"] == "mqtts://gw:***@broker.example:8883"
    assert cfg["commands"]["operators"][0] == {"id": "ops-1", "private_key": "<redacted>"}


def test_unparseable_config_is_left_out_rather_than_guessed_at(tmp_path: Path) -> None:
    secret = f"pw-{secrets.token_urlsafe(10)}"
    config = tmp_path / "lintel.toml"
    config.write_text(f'[mqtt]\nurl = "mqtts://gw:{secret}@b"\nthis line is not toml\n')
    members = bundle(config, tmp_path / "b.tar.gz")
    assert "config.redacted.json" not in members
    assert b"not included" in members["config-NOT-INCLUDED.txt"]
    assert_no_secret(members, {"url password": secret.encode()})
