"""Deployments on the config side: sealing, the secret store, the document's checks, the layers and
which config a starting gateway chooses (no daemon: the write-ahead decisions one by one)."""

from __future__ import annotations

import io
import json
import stat
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from gateway.config import LoadedConfig, load_config
from gateway.config.deploy_files import TRYING, DeployFiles
from gateway.config.deployment import Deployment, check, local_path_problems
from gateway.config.effective import choose
from gateway.config.secrets import GatewayKey, SecretError, SecretStore, seal
from gateway.core.errors import ConfigError


def _base(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    pw = tmp_path / "mqtt.pass"
    pw.write_text("old-password\n")
    path.write_text(
        f"""
[gateway]
id = "gw-1"
site = "oak-court"
state_dir = "{tmp_path / "state"}"
runtime_dir = "{tmp_path / "run"}"

[mqtt]
url = "mqtt://127.0.0.1:1883"
username = "gw-1"
password_file = "{pw}"
keepalive_s = 20
{extra}
"""
    )
    return path


def _key(tmp_path: Path) -> GatewayKey:
    return GatewayKey.load_or_create(tmp_path / "state")


def test_sealed_secret_opens_only_here_and_only_under_its_name(tmp_path: Path) -> None:
    key = _key(tmp_path)
    other = GatewayKey.load_or_create(tmp_path / "other")
    sealed = seal(key.public_b64, "mqtt", "s3cret-pass")
    assert "s3cret-pass" not in sealed
    assert key.open("mqtt", sealed) == "s3cret-pass"
    with pytest.raises(SecretError, match="does not open"):
        key.open("camera", sealed)  # moved to another name
    with pytest.raises(SecretError, match="does not open"):
        other.open("mqtt", sealed)  # sealed to another gateway
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(SecretError):
        key.open("mqtt", tampered)
    with pytest.raises(SecretError, match="not a sealed secret"):
        key.open("mqtt", "plain-text")


def test_gateway_key_is_made_once_owner_only(tmp_path: Path) -> None:
    first = _key(tmp_path)
    again = _key(tmp_path)
    assert first.public_b64 == again.public_b64
    mode = stat.S_IMODE((tmp_path / "state" / "gateway.key").stat().st_mode)
    assert mode == 0o600


def test_secret_store_keeps_names_owner_only(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    store.merge({"mqtt": "a"})
    store.merge({"cam": "b"})
    assert store.load() == {"mqtt": "a", "cam": "b"}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"mqtt": {"password_file": "/etc/shadow"}}, "mqtt.password_file"),
        ({"mqtt": {"ca_file": "/etc/ssl/x.pem"}}, "mqtt.ca_file"),
        ({"gateway": {"state_dir": "/tmp"}}, "gateway.state_dir"),
        ({"outbox": {"path": "/tmp/x.db"}}, "outbox.path"),
        ({"vision": {"manifest_dir": "/tmp"}}, "vision.manifest_dir"),
        ({"sources": [{"type": "camera", "id": "c", "url": "file:///etc/passwd"}]}, "sources[0].url"),
        ({"sources": [{"type": "camera", "id": "c", "url": "/etc/passwd"}]}, "sources[0].url"),
        (
            {"sources": [{"type": "modbus", "id": "b", "endpoint": "rtu:///dev/../etc/passwd"}]},
            "sources[0].endpoint",
        ),
        (
            {"sources": [{"type": "modbus", "id": "b", "endpoint": "rtu:///etc/passwd"}]},
            "sources[0].endpoint",
        ),
        (
            {"sources": [{"type": "ble", "id": "b", "sensors": [{"bindkey_file": "/k"}]}]},
            "sources[0].sensors[0].bindkey_file",
        ),
        ({"commands": {"allow": ["door_pulse"]}}, "commands"),
        (
            {"sources": [{"type": "ble", "id": "b", "sensors": [{"bindkey": "00" * 16}]}]},
            "sources[0].sensors[0].bindkey",
        ),
        ({"mqtt": {"password": "in-clear"}}, "mqtt.password"),
    ],
)
def test_a_deployment_naming_a_local_file_a_clear_secret_or_a_local_only_setting_is_refused(
    doc: dict, where: str
) -> None:
    problems = local_path_problems(doc)
    assert [p.path for p in problems] == [where]


def test_devices_and_network_addresses_are_deployable() -> None:
    doc = {
        "sources": [
            {"type": "camera", "id": "c", "url": "rtsp://10.0.0.5/stream"},
            {"type": "camera", "id": "d", "url": "/dev/video0"},
            {"type": "modbus", "id": "b", "endpoint": "rtu:///dev/ttyUSB0"},
            {"type": "modbus", "id": "t", "endpoint": "tcp://10.0.0.9:502"},
        ]
    }
    assert local_path_problems(doc) == []


def test_check_lays_the_deployment_over_the_local_file_and_opens_its_secret(tmp_path: Path) -> None:
    base = load_config(_base(tmp_path))
    key = _key(tmp_path)
    dep = Deployment(
        3,
        '[mqtt]\nurl = "mqtt://127.0.0.1:1884"\nusername = "gw-1"\npassword_secret = "mqtt"\n',
        {"mqtt": seal(key.public_b64, "mqtt", "new-password")},
    )
    loaded = check(dep, base, key, {})
    assert loaded.config.mqtt is not None
    assert loaded.config.mqtt.url == "mqtt://127.0.0.1:1884"
    assert loaded.config.mqtt.password_file is None  # the secret replaces the local file
    assert loaded.config.mqtt.keepalive_s == 20  # what the office did not send stays local
    assert loaded.secret(None, "mqtt") == "new-password"
    assert loaded.origin == "deployment v3"
    assert loaded.origins["mqtt.url"] == "deployment v3"
    assert loaded.origins["mqtt.keepalive_s"] == "local"
    assert "mqtt.password_file" not in loaded.origins
    assert loaded.sha256 == dep.sha256 and loaded.file_sha256 == base.sha256


def test_check_refuses_with_check_configs_texts(tmp_path: Path) -> None:
    base = load_config(_base(tmp_path))
    key = _key(tmp_path)
    with pytest.raises(ConfigError) as bad_toml:
        check(Deployment(1, "[mqtt\nurl = 1"), base, key, {})
    assert "line 1" in str(bad_toml.value)
    with pytest.raises(ConfigError) as unknown:
        check(Deployment(1, "[mqtt]\nkeepalive = 20\n"), base, key, {})
    assert unknown.value.problems[0].path.startswith("mqtt.keepalive")
    with pytest.raises(ConfigError) as missing:
        check(Deployment(1, '[mqtt]\nusername = "u"\npassword_secret = "nope"\n'), base, key, {})
    assert "no such secret" in str(missing.value)
    with pytest.raises(ConfigError, match="another gateway"):
        check(Deployment(1, '[gateway]\nid = "gw-2"\n'), base, key, {})


@dataclass
class Staged:
    """The installer's file, and one deployment (`[mqtt] keepalive_s`) staged over it."""

    path: Path
    base: LoadedConfig
    key: GatewayKey
    store: SecretStore
    files: DeployFiles


def _staged(tmp_path: Path, version: int, keepalive_s: int) -> Staged:
    path = _base(tmp_path)
    base = load_config(path)
    files = DeployFiles(base.state_dir)
    files.stage(Deployment(version, f"[mqtt]\nkeepalive_s = {keepalive_s}\n"), base.sha256)
    return Staged(path, base, _key(tmp_path), SecretStore(base.state_dir), files)


def test_start_tries_a_staged_deployment_once_then_rolls_back(tmp_path: Path) -> None:
    staged = _staged(tmp_path, 4, 40)
    base, key, store, files = staged.base, staged.key, staged.store, staged.files
    first = choose(base, key, store, files)
    assert first.on_probation is not None and first.on_probation.phase == TRYING
    assert first.loaded.config.mqtt is not None and first.loaded.config.mqtt.keepalive_s == 40
    # The process dies during probation (kill -9): the next start is back on the local file.
    second = choose(base, key, store, files)
    assert second.on_probation is None and second.loaded.origin == "local"
    assert [o["kind"] for o in files.outcomes()] == ["config_rolled_back"]
    assert files.pending() is None


def test_start_runs_the_last_known_good_until_the_local_file_changes(tmp_path: Path) -> None:
    staged = _staged(tmp_path, 5, 50)
    path, base, key, store, files = staged.path, staged.base, staged.key, staged.store, staged.files
    pending = choose(base, key, store, files).on_probation
    assert pending is not None
    files.promote(pending)
    assert choose(base, key, store, files).loaded.origin == "deployment v5"
    path.write_text(path.read_text().replace("keepalive_s = 20", "keepalive_s = 25"))
    edited = load_config(path)
    start = choose(edited, key, store, files)
    assert start.loaded.origin == "local"
    assert start.loaded.config.mqtt is not None and start.loaded.config.mqtt.keepalive_s == 25
    assert [o["kind"] for o in files.outcomes()] == ["config_diverged"]
    assert files.lkg() is None


def test_a_local_edit_before_the_staged_deployment_runs_wins(tmp_path: Path) -> None:
    staged = _staged(tmp_path, 6, 60)
    path, key, store, files = staged.path, staged.key, staged.store, staged.files
    path.write_text(path.read_text() + '\n[log]\nlevel = "debug"\n')
    start = choose(load_config(path), key, store, files)
    assert start.on_probation is None and start.loaded.origin == "local"
    assert files.outcomes()[0]["kind"] == "config_diverged"
    assert files.handled_version() == 6


def test_the_operator_cli_seals_and_signs_a_deployment_the_gateway_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.cli.main import main
    from gateway.commands.auth import Authority
    from gateway.commands.envelope import validate
    from gateway.config.commands import CommandsSection

    def lintel(*argv: str) -> str:  # in this process: three interpreter starts would cost ~10 s
        capsys.readouterr()
        assert main(list(argv)) == 0
        return capsys.readouterr().out

    gateway = _key(tmp_path)
    key_file = tmp_path / "office.key"
    public = json.loads(lintel("keys", "new", "--id", "office", "--out", str(key_file), "--json"))[
        "public_key"
    ]
    (tmp_path / "deploy.toml").write_text('[mqtt]\nusername = "gw-1"\npassword_secret = "mqtt"\n')
    (tmp_path / "pw").write_text("fresh-password\n")
    out = lintel(
        "keys", "deploy", "--key", str(key_file), "--gateway", "gw-1", "--site", "oak-court",
        "--version", "7", "--config", str(tmp_path / "deploy.toml"),
        "--secret", f"mqtt={tmp_path / 'pw'}", "--to", gateway.public_b64,
    )  # fmt: skip
    assert "fresh-password" not in out
    doc = json.loads(out)
    section = CommandsSection.model_validate(
        {
            "allow": ["deploy_config"],
            "operators": [{"id": "office", "public_key": public, "allow": ["deploy_config"]}],
        }
    )
    assert Authority.from_config(section, "gw-1", "oak-court").authenticate(doc).by == "office"
    cmd = validate(doc)
    assert cmd.args["version"] == 7
    assert gateway.open("mqtt", cmd.args["secrets"]["mqtt"]) == "fresh-password"
    monkeypatch.setattr("sys.stdin", io.StringIO("cam-pass\n"))
    sealed = lintel("keys", "seal", "--to", gateway.public_b64, "--name", "cam")
    assert gateway.open("cam", sealed.strip()) == "cam-pass"


def test_config_show_origin_names_where_each_value_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli.main import main

    path = _base(tmp_path)
    base = load_config(path)
    files = DeployFiles(base.state_dir)
    files.stage(Deployment(8, '[mqtt]\nurl = "mqtt://10.0.0.2:1883"\n[log]\nlevel = "debug"\n'), base.sha256)
    pending = files.pending()
    assert pending is not None
    files.promote(pending)
    files.stage(Deployment(9, "[log]\nlevel = 'error'\n"), base.sha256)
    assert main(["config", "show", "--origin", "-c", str(path)]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert 'mqtt.url = "mqtt://10.0.0.2:1883"  # deployment v8' in lines
    assert 'log.level = "debug"  # deployment v8' in lines
    assert "mqtt.keepalive_s = 20  # local" in lines
    assert 'gateway.id = "gw-1"  # local' in lines
    assert "old-password" not in out.out + out.err
    assert "deployment v9 is pending (staged)" in out.out + out.err
    assert files.pending() is not None and files.pending().phase == "staged"  # nothing changed


def test_remote_tunables_are_a_layer_with_their_own_origin(tmp_path: Path) -> None:
    from gateway.config.effective import preview
    from gateway.config.overlay import overlay_path, write_overlay

    path = _base(tmp_path)
    base = load_config(path)
    tuned = path.read_text() + '\n[log]\nlevel = "debug"\n'
    write_overlay(base.sha256, overlay_path(base), tuned.encode())
    shown = preview(base, DeployFiles(base.state_dir))
    assert shown.raw["log"] == {"level": "debug"}
    assert shown.origins["log.level"] == "remote tunables"
    assert shown.origins["mqtt.keepalive_s"] == "local"
    # Once the installer edits the file, the tunables no longer apply (and are not shown).
    path.write_text(path.read_text().replace("keepalive_s = 20", "keepalive_s = 21"))
    assert "log" not in preview(load_config(path), DeployFiles(base.state_dir)).raw


def test_a_local_password_secret_must_name_a_stored_secret(tmp_path: Path) -> None:
    path = _base(tmp_path)
    text = path.read_text().replace(f'password_file = "{tmp_path / "mqtt.pass"}"', 'password_secret = "mqtt"')
    path.write_text(text)
    with pytest.raises(ConfigError) as missing:
        load_config(path)
    assert missing.value.problems[0].path == "mqtt.password_secret"
    assert "no such secret" in str(missing.value)
    SecretStore(tmp_path / "state").merge({"mqtt": "from-the-office"})
    loaded = load_config(path)  # valid now; `lintel run` hands it the store's secrets:
    running = replace(loaded, secrets=SecretStore(loaded.state_dir).load())
    assert running.secret(None, "mqtt") == "from-the-office"


def test_a_deployed_shelly_door_takes_its_password_from_a_sealed_secret(tmp_path: Path) -> None:
    base = load_config(_base(tmp_path))
    key = _key(tmp_path)
    door = (
        '[[doors]]\nid = "bike-room"\n[doors.relay]\ntype = "shelly_gen2"\nurl = "http://10.0.0.40"\n'
        'password_secret = "shelly"\ndevice_id = "shellyplus1-e4b063f0aa01"\n'
    )
    with pytest.raises(ConfigError) as missing:
        check(Deployment(1, door), base, key, {})
    assert str(missing.value.problems[0]).startswith(
        'doors[0].relay.password_secret: no such secret (got "shelly")'
    )
    loaded = check(Deployment(1, door, {"shelly": seal(key.public_b64, "shelly", "relay-pw")}), base, key, {})
    relay = loaded.config.doors[0].relay
    assert (
        loaded.secret(getattr(relay, "password_file", None), getattr(relay, "password_secret", None))
        == "relay-pw"
    )


def test_a_deployed_camera_takes_its_password_from_a_sealed_secret_without_showing_it(tmp_path: Path) -> None:
    from drivers.camera.capture import stream_address

    base = load_config(_base(tmp_path))
    key = _key(tmp_path)
    camera = '[[sources]]\nid = "cam-1"\ntype = "camera"\nurl = "rtsp://10.0.0.5/s"\nusername = "admin"\n'
    camera += 'password_secret = "cam-1"\n'
    sealed = {"cam-1": seal(key.public_b64, "cam-1", "cam-S3cret")}
    loaded = check(Deployment(1, camera, sealed), base, key, {})
    cfg = loaded.config.sources[0]
    assert stream_address(cfg.with_secrets(loaded.secrets)) == "rtsp://admin:cam-S3cret@10.0.0.5/s"
    shown = cfg.with_secrets(loaded.secrets)
    assert "cam-S3cret" not in repr(shown) and "cam-S3cret" not in json.dumps(shown.model_dump())
    with pytest.raises(ConfigError, match="no such secret"):
        check(Deployment(2, camera), base, key, {})


def test_a_failed_deployment_comes_back_on_the_last_known_good_deployment_not_the_local_file(
    tmp_path: Path,
) -> None:
    base = load_config(_base(tmp_path))
    key, store, files = _key(tmp_path), SecretStore(base.state_dir), DeployFiles(base.state_dir)
    files.stage(Deployment(5, "[mqtt]\nkeepalive_s = 50\n"), base.sha256)
    good = choose(base, key, store, files).on_probation
    assert good is not None
    files.promote(good)
    files.stage(Deployment(6, "[mqtt]\nkeepalive_s = 60\n"), base.sha256)
    trying = choose(base, key, store, files)
    assert trying.loaded.origin == "deployment v6"
    assert trying.previous is not None and trying.previous.origin == "deployment v5"
    back = choose(base, key, store, files)  # the process died during v6's probation
    assert back.loaded.origin == "deployment v5" and back.loaded.version == 5
    assert back.loaded.config.mqtt is not None and back.loaded.config.mqtt.keepalive_s == 50
    assert files.lkg() is not None and files.lkg().deployment.version == 5


def test_a_rejected_deployment_reads_like_check_config(tmp_path: Path) -> None:
    path = _base(tmp_path)
    base = load_config(path)
    with pytest.raises(ConfigError) as deployed:
        check(Deployment(1, "[mqtt]\nkeepalive = 10\n"), base, _key(tmp_path), {})
    path.write_text(path.read_text().replace("keepalive_s = 20", "keepalive_s = 20\nkeepalive = 10"))
    with pytest.raises(ConfigError) as local:
        load_config(path)
    assert [str(p) for p in deployed.value.problems] == [str(p) for p in local.value.problems]


def test_a_deployed_ble_sensor_takes_its_bindkey_from_a_sealed_secret_and_never_runs_without(
    tmp_path: Path,
) -> None:
    base = load_config(_base(tmp_path))
    key = _key(tmp_path)
    ble = (
        '[[sources]]\nid = "radio"\ntype = "ble"\n[[sources.sensors]]\nid = "door-back"\n'
        'address = "E4:AA:EC:81:21:AE"\nbindkey_secret = "door-back"\n'
    )
    bindkey = "231d39c1d7cc1ab1aee224cd096db932"
    loaded = check(
        Deployment(1, ble, {"door-back": seal(key.public_b64, "door-back", bindkey)}), base, key, {}
    )
    source = loaded.config.sources[0]
    assert source.with_secrets(loaded.secrets).sensors[0].key() == bytes.fromhex(bindkey)
    with pytest.raises(ValueError, match="not handed"):
        source.sensors[0].key()  # unresolved: an error, never "no key" (plaintext adverts would pass)
    with pytest.raises(ConfigError, match="no such secret"):
        check(Deployment(2, ble), base, key, {})
