"""Config validation: every problem named by key path, bad value and fix."""

from __future__ import annotations

import re
import textwrap
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from drivers.ble.config import SensorConfig
from drivers.modbus.config import MeterConfig
from drivers.modbus.profiles import PointFields
from gateway.config import config_warnings, load_config, parse_config
from gateway.config.driver_registry import config_classes
from gateway.config.model import GatewayConfig
from gateway.core import ConfigError
from gateway.lanes.care.config import HouseholdConfig
from gateway.lanes.doors import ModbusCoilRelay, ShellyGen2Relay
from gateway.lanes.doors.config import FlashFunction
from gateway.lanes.rules.config import DeadbandRule, DoorLeftOpenRule, ThresholdRule
from tests.support.process import lintel_output

ROOT = Path(__file__).resolve().parents[1]

BASE = """
[gateway]
id = "gw1"
site = "site-a"
"""

SOURCE = """
[[sources]]
id = "m1"
type = "simulated"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text).encode(), "test.toml")
    return [str(p) for p in info.value.problems]


MQTT_USER = BASE + "[mqtt]\nurl = 'mqtt://broker'\nusername = 'u'\n"
BOTH_PASSWORDS = (
    'mqtt.password_secret: password_file and password_secret both given (got "mqtt"); expected one of '
    "them: password_secret names a deployed secret, password_file a local file"
)
EMPTY_PASSWORD_FILE = (
    'mqtt.password_file: empty file name (got ""); expected the path of a readable file holding the '
    "MQTT password (relative to the config file's folder), or no password_file key"
)
CASES = [
    (
        "unknown top-level key",
        BASE + "[gatway]\nid='x'\n",
        'gatway: unknown key; expected "gateway" (did you mean it?)',
    ),
    (
        "unknown key with no near match",
        BASE + "[outbox]\nzzz = 1\n",
        "outbox.zzz: unknown key; expected one of: batch_max_readings, classes, commit_window_ms, max_mb, "
        "max_pending_records, min_free_disk_mb, path",
    ),
    (
        "misspelt key",
        BASE + "[outbox]\ncomit_window_ms = 100\n",
        'outbox.comit_window_ms: unknown key; expected "commit_window_ms" (did you mean it?)',
    ),
    (
        "missing required key",
        "[gateway]\nsite = 'a'\n",
        "gateway.id: required key is missing; expected a value: this gateway's id: unique per site, "
        "used in topics and payloads",
    ),
    (
        "missing required table",
        "[outbox]\nmax_mb = 5\n",
        "gateway: required key is missing; expected a table",
    ),
    (
        "wrong type: string for number",
        BASE + SOURCE + "interval_s = 'fast'\n",
        'sources[0].interval_s: wrong type (got "fast"); expected a number',
    ),
    (
        "wrong type: float for int",
        BASE + "[outbox]\ncommit_window_ms = 2.5\n",
        "outbox.commit_window_ms: wrong type (got 2.5); expected a whole number",
    ),
    (
        "wrong type: string for bool",
        BASE + SOURCE + "enabled = 'yes'\n",
        'sources[0].enabled: wrong type (got "yes"); expected true or false',
    ),
    (
        "out of range low",
        BASE + "[outbox]\nmax_mb = 0\n",
        "outbox.max_mb: out of range (got 0); expected a number > 0",
    ),
    (
        "out of range high",
        BASE + "[outbox]\ncommit_window_ms = 60000\n",
        "outbox.commit_window_ms: out of range (got 60000); expected a number <= 5000",
    ),
    (
        "bad gateway id",
        "[gateway]\nid = 'Block 7'\nsite = 'a'\n",
        "gateway.id: invalid format (got \"Block 7\"); expected 1-64 characters of a-z, 0-9, '_' or '-', "
        "starting with a letter or digit",
    ),
    (
        "unknown source type",
        BASE + "[[sources]]\nid = 'm1'\ntype = 'modbuss'\n",
        'sources[0].type: unknown source type (got "modbuss"); '
        "expected one of: ble, camera, modbus, simulated",
    ),
    (
        "source without type",
        BASE + "[[sources]]\nid = 'm1'\n",
        "sources[0].type: required key is missing; expected one of: ble, camera, modbus, simulated",
    ),
    (
        "duplicate source id",
        BASE + SOURCE + SOURCE,
        'sources[1].id: duplicate source id (got "m1"); expected an id not already used by sources[0].id',
    ),
    (
        "bad profile",
        BASE + SOURCE + "profile = 'gas_meter'\n",
        "sources[0].profile: not an allowed value (got \"gas_meter\"); expected one of: 'electricity_meter', "
        "'water_meter', 'door_sensor' or 'load'",
    ),
    (
        "bad URL scheme",
        BASE + "[mqtt]\nurl = 'http://broker:1883'\n",
        'mqtt.url: unsupported URL scheme (got "http://broker:1883"); expected mqtt://host[:port] or '
        "mqtts://host[:port]",
    ),
    (
        "URL without host",
        BASE + "[mqtt]\nurl = 'mqtt://:1883'\n",
        'mqtt.url: broker URL has no host (got "mqtt://:1883"); expected mqtt://host[:port] or mqtts://host[:port]',
    ),
    (
        "URL with bad port",
        BASE + "[mqtt]\nurl = 'mqtt://broker:99999'\n",
        'mqtt.url: not a valid broker URL (got "mqtt://broker:99999"); expected mqtt://host[:port] or '
        "mqtts://host[:port]",
    ),
    (
        "inline credentials",
        BASE + "[mqtt]\nurl = 'mqtt://u:secret@broker'\n",
        'mqtt.url: credentials must not be inline in the URL (got "mqtt://u:***@broker"); expected '
        "the URL without user:password@, and mqtt.username plus mqtt.password_file",
    ),
    (
        "inline password key",
        BASE + "[mqtt]\nurl = 'mqtt://broker'\npassword = 'secret'\n",
        'mqtt.password: unknown key; expected "password_file" (did you mean it?)',
    ),
    (
        "cert without key",
        BASE + "[mqtt]\nurl = 'mqtts://broker'\ncert_file = 'c.pem'\n",
        "mqtt: cert_file and key_file go together; expected both mqtt.cert_file and mqtt.key_file, "
        "or neither",
    ),
    (
        "password without username",
        BASE + "[mqtt]\nurl = 'mqtt://broker'\npassword_file = 'pw'\n",
        "mqtt: password_file needs a username; expected mqtt.username set as well",
    ),
    (
        "password from a file and a secret",
        BASE
        + "[mqtt]\nurl = 'mqtt://broker'\nusername = 'u'\npassword_file = 'pw'\npassword_secret = 'mqtt'\n",
        'mqtt.password_secret: password_file and password_secret both given (got "mqtt"); expected one of '
        "them: password_secret names a deployed secret, password_file a local file",
    ),
    (  # an empty name is refused first (the loader would read "" as the config's own folder)
        "empty password file beside a secret",
        MQTT_USER + "password_file = ''\npassword_secret = 'mqtt'\n",
        EMPTY_PASSWORD_FILE,
    ),
    (
        "empty password file without username",
        BASE + "[mqtt]\nurl = 'mqtt://broker'\npassword_file = ''\n",
        EMPTY_PASSWORD_FILE,
    ),
    (
        "protocol version",
        BASE + "[mqtt]\nurl = 'mqtt://broker'\nprotocol = '3'\n",
        "mqtt.protocol: not an allowed value (got \"3\"); expected one of: '5' or '3.1.1'",
    ),
    (
        "qos 0 refused",
        BASE + "[mqtt]\nurl = 'mqtt://broker'\nqos = 0\n",
        "mqtt.qos: not an allowed value (got 0); expected one of: 1",
    ),
    (
        "alarm byte cap",
        BASE + "[outbox.classes.alarm]\nmax_mb = 5\nmax_age_h = 1\n",
        "outbox.classes: alarms have no byte cap: they are kept until the disk floor; expected no max_mb in "
        "[outbox.classes.alarm] (only max_age_h)",
    ),
    (
        "unknown outbox class",
        BASE + "[outbox.classes.video]\nmax_age_h = 1\n",
        "outbox.classes.video: unknown table name (got \"video\"); expected one of: 'telemetry', 'state', "
        "'event' or 'alarm'",
    ),
    (
        "TOML syntax",
        BASE + "[outbox\n",
        "[outbox (line 5): TOML syntax error: expected ']' at the end of a table declaration (got [outbox); "
        "expected [name] or [[name]]",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_names_key_value_and_fix(text: str, expected: str) -> None:
    assert expected in problems(text), problems(text)


MODBUS_RTU = """
[[sources]]
type = "modbus"
id = "bus-1"
endpoint = "rtu:///dev/ttyUSB0?baudrate=9600"

[[sources.meters]]
id = "m1"
unit = {unit}
profile = "eastron_sdm120"
"""

# Each wrong config with the one problem it must produce, in full: key path (and line for TOML
# syntax), the value as written, and the fix. None of them may show a password.
EDGES = [
    (
        "unterminated string: the line of the quote",
        BASE + '[mqtt]\nurl = "mqtt://broker\nusername = "gw"\n',
        "mqtt.url (line 6): TOML syntax error: illegal character '\\n' (got url = \"mqtt://broker); "
        'expected the closing " on the same line (use """ ... """ for text over several lines)',
    ),
    (
        "unclosed array: the line that opened it, not where tomllib noticed",
        BASE + '[commands]\nallow = ["ping",\n  "alarm_ack"\n\n[log]\nlevel = "info"\n',
        'commands.allow (line 6): TOML syntax error: unclosed array (got allow = ["ping",); '
        "expected a closing ] after the last item",
    ),
    (
        "unterminated multi-line string: reported at end of document",
        BASE + '[mqtt]\nurl = """mqtt://broker\nusername = "gw"\n[log]\nlevel = "info"\n',
        'mqtt.url (line 6): TOML syntax error: unterminated string (got url = """mqtt://broker); '
        'expected the closing quote (" or """) of this string',
    ),
    (
        "duplicate key",
        BASE + "[outbox]\nmax_mb = 5\nmax_mb = 6\n",
        "outbox.max_mb (line 7): TOML syntax error: cannot overwrite a value (got max_mb = 6); "
        "expected each key once per table (use [[name]] for a list of tables)",
    ),
    (
        "bare word value",
        BASE + "[commands]\nenabled = yes\n",
        "commands.enabled (line 6): TOML syntax error: invalid value (got enabled = yes); expected a value: "
        '"text" in quotes, a number, true or false, [a, list] or { a = table }',
    ),
    (
        "a password on a line with a syntax error is masked",
        BASE + '[mqtt]\nurl = "mqtt://u:hunter2@broker\n',
        "mqtt.url (line 6): TOML syntax error: illegal character '\\n' (got url = \"mqtt://u:***@broker); "
        'expected the closing " on the same line (use """ ... """ for text over several lines)',
    ),
    (
        "empty file",
        "",
        "test.toml: the config file is empty (got 0 bytes); expected at least a [gateway] table with id and "
        "site (see config.example.toml)",
    ),
    (
        "only comments",
        "# lintel\n\n",
        "test.toml: the config file has no settings (got 10 bytes); expected at least a [gateway] table with "
        "id and site (see config.example.toml)",
    ),
    (
        "UTF-8 byte order mark",
        "\ufeff" + BASE,
        "test.toml (line 1): file starts with a UTF-8 byte order mark (BOM) (got bytes EF BB BF); expected "
        "the file saved as UTF-8 without BOM (Notepad: 'UTF-8', not 'UTF-8 with BOM')",
    ),
    (
        "unit 300 on RS-485",
        BASE + MODBUS_RTU.format(unit=300),
        "sources[0].meters[0].unit: no such Modbus unit id (got 300); expected 1-247 on an RS-485 line "
        "(rtu://, rtu+tcp://), 1-255 on Modbus TCP",
    ),
    (
        "unit 250 on RS-485",
        BASE + MODBUS_RTU.format(unit=250),
        "sources[0].meters[0].unit: unit ids on RS-485 are 1-247 (got 250); expected a number 1-247",
    ),
    (
        "inverted reconnect backoff bounds",
        BASE + "[mqtt]\nurl = 'mqtt://broker'\nreconnect_initial_s = 10\nreconnect_max_s = 2\n",
        "mqtt.reconnect_max_s: reconnect_max_s is below reconnect_initial_s (got 2); expected a number >= "
        "reconnect_initial_s (10)",
    ),
    (
        "inverted restart backoff bounds",
        BASE + "[runtime]\nrestart_initial_s = 30\nrestart_max_s = 5\n",
        "runtime.restart_max_s: restart_max_s is below restart_initial_s (got 5); expected a number >= "
        "restart_initial_s (30)",
    ),
    (
        "duplicate meter id",
        BASE
        + MODBUS_RTU.format(unit=1)
        + '[[sources.meters]]\nid = "m1"\nunit = 2\nprofile = "eastron_sdm120"\n',
        'sources[0].meters[1].id: duplicate meter id (got "m1"); expected an id not used by meters[0]',
    ),
    (
        "[sources] written as a table",
        BASE + '[sources]\ntype = "simulated"\nid = "m1"\n',
        "sources: written as one [table] (got [sources]); expected [[sources]] (double brackets), "
        "once per entry",
    ),
    (
        "[sources] then [[sources]]",
        BASE + '[sources]\nid = "a"\n[[sources]]\nid = "b"\n',
        "[[sources]] (line 7): TOML syntax error: cannot overwrite a value (got [[sources]]); expected each "
        "key once per table (use [[name]] for a list of tables)",
    ),
    (
        "deeply nested value (RecursionError in tomllib)",
        BASE + "[log]\nlevel = " + "[" * 5000 + "]" * 5000 + "\n",
        "log.level (line 6): values nested too deeply (got 5000 levels of [ ] or { }); expected at most 32 "
        "levels (no config key needs more than 3)",
    ),
    (
        "credentials in the URL",
        BASE + "[mqtt]\nurl = 'mqtts://gw:hunter2@broker:8883'\n",
        'mqtt.url: credentials must not be inline in the URL (got "mqtts://gw:***@broker:8883"); expected '
        "the URL without user:password@, and mqtt.username plus mqtt.password_file",
    ),
    (
        "credentials in an invalid URL",
        BASE + "[mqtt]\nurl = 'mqtt://gw:hunter2@broker:99999'\n",
        'mqtt.url: not a valid broker URL (got "mqtt://gw:***@broker:99999"); expected mqtt://host[:port] '
        "or mqtts://host[:port]",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in EDGES], ids=[c[0] for c in EDGES])
def test_config_edges_name_key_value_and_fix_and_never_a_secret(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text.encode("utf-8"), "test.toml")
    found = [str(p) for p in info.value.problems]
    assert found == [expected]
    assert all(p.got is not None and p.expected for p in info.value.problems)
    assert "hunter2" not in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    found = problems(BASE + "[outbox]\nmax_mb = -1\ncomit_window_ms = 3\n" + SOURCE + "interval_s = 'x'\n")
    assert len(found) == 3
    assert all(re.match(r"^[a-z_\[\]0-9.]+: ", p) for p in found), found


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'nope.toml'}: config file not found; expected a TOML file; see config.example.toml"
    ]


def test_missing_secret_and_certificate_files(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        BASE + f"state_dir = '{tmp_path}'\n[mqtt]\nurl = 'mqtts://b'\nusername = 'u'\npassword_file = 'pw'\n"
        "ca_file = '/nonexistent/ca.pem'\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert [str(p) for p in info.value.problems] == [
        f'mqtt.password_file: file not found (got "{tmp_path / "pw"}"); expected a readable file holding the '
        "MQTT password",
        'mqtt.ca_file: file not found (got "/nonexistent/ca.pem"); expected a readable PEM file with the CA '
        "that signed the broker's certificate",
    ]


def test_empty_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        BASE + f"state_dir = '{tmp_path}'\n[mqtt]\nurl = 'mqtt://b'\nusername = 'u'\npassword_file = 'pw'\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert str(info.value.problems[0]).startswith("mqtt.password_file: password file is empty")


def test_state_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE + f"state_dir = '{tmp_path / 'afile' / 'sub'}'\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert str(info.value.problems[0]).startswith(
        f"gateway.state_dir: folder cannot be created or written: Not a directory "
        f'(got "{tmp_path / "afile" / "sub"}")'
    )


def test_state_dir_that_cannot_be_created_is_found_by_trying_and_nothing_is_left_behind(
    tmp_path: Path,
) -> None:
    # As root every permission check passes, yet nothing can be created under /proc: only trying
    # tells. A creatable folder is created and removed again by the check.
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE + "state_dir = '/proc/lintel-test/state'\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert [str(p) for p in info.value.problems] == [
        "gateway.state_dir: folder cannot be created or written: No such file or directory "
        '(got "/proc/lintel-test/state"); expected a writable folder for the service user '
        "(systemd's StateDirectory= makes /var/lib/lintel)"
    ]
    cfg.write_text(BASE + f"state_dir = '{tmp_path / 'new' / 'state'}'\n")
    load_config(cfg)
    assert not (tmp_path / "new").exists()


def test_a_password_over_plain_mqtt_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "pw").chmod(0o600)  # (a file others can read is its own warning: test_relays.py)
    body = f"state_dir = '{tmp_path}'\n[mqtt]\nusername = 'u'\npassword_file = 'pw'\n"
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE + body + "url = 'mqtt://broker.example'\n")
    assert [str(w) for w in config_warnings(load_config(cfg))] == [
        'mqtt.url: the MQTT password travels unencrypted over plain mqtt:// (got "mqtt://broker.example"); '
        "expected mqtts://broker.example (TLS, with mqtt.ca_file if the broker's CA is private)"
    ]
    for quiet in ("mqtts://broker.example", "mqtt://127.0.0.1:1883"):
        cfg.write_text(BASE + body + f"url = '{quiet}'\n")
        assert config_warnings(load_config(cfg)) == []


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        BASE + "state_dir = 'state'\n[mqtt]\nurl = 'mqtt://b'\nusername = 'u'\npassword_file = 'pw'\n"
    )
    loaded = load_config(cfg)
    assert loaded.state_dir == tmp_path / "state"
    assert loaded.outbox_path == tmp_path / "state" / "outbox.db"


def test_partial_class_table_keeps_other_defaults() -> None:
    loaded = parse_config((BASE + "[outbox.classes.telemetry]\nmax_mb = 8\nmax_age_h = 2\n").encode())
    classes = loaded.config.outbox.classes
    assert classes["telemetry"].max_mb == 8
    assert classes["event"].max_mb == 64 and classes["alarm"].max_mb is None


def test_example_config_is_valid_and_documents_every_key() -> None:
    text = (ROOT / "config.example.toml").read_text()
    loaded = parse_config(text.encode(), "config.example.toml")
    assert loaded.config.gateway.id == "bldg-07"
    assert loaded.config.mqtt is not None and loaded.config.mqtt.password_file
    missing = []
    for section, model in _sections():
        for name in model.model_fields:
            if name == "classes":
                continue
            if not re.search(rf"^#? ?{name} = |^#? ?\[\[?[a-z_.]*\.{name}\]\]?", text, re.M):
                missing.append(f"{section}.{name}")
    assert not missing, f"config.example.toml does not document: {missing}"
    # Every key line has a comment right above it (or is a commented example of one).
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            assert lines[i - 1].startswith("#") or lines[i - 1].startswith("["), f"no comment above: {line}"


def _sections() -> list[tuple[str, type[BaseModel]]]:
    out: list[tuple[str, type[BaseModel]]] = []
    for name, field in GatewayConfig.model_fields.items():
        for t in [field.annotation, *typing.get_args(field.annotation)]:
            if isinstance(t, type) and issubclass(t, BaseModel):
                out.append((name, t))
    out.extend(("sources", cls) for cls in config_classes())
    out.append(("sources.meters", MeterConfig))
    out.append(("sources.meters.points", PointFields))
    out.append(("sources.sensors", SensorConfig))
    out.append(("care.households", HouseholdConfig))
    out.extend(("rules", cls) for cls in (ThresholdRule, DoorLeftOpenRule, DeadbandRule))
    out.append(("doors.relay", ModbusCoilRelay))
    out.append(("doors.relay.flash", FlashFunction))
    out.append(("doors.relay", ShellyGen2Relay))
    return out


BLE_BASE = """
[gateway]
id = "gw1"
site = "site-a"
[[sources]]
id = "ble-hall"
type = "ble"
[[sources.sensors]]
id = "door-1"
"""


@pytest.mark.parametrize(
    ("sensor", "expected"),
    [
        (
            'address = "E4:AA:EC:81:21"',
            'sources[0].sensors[0].address: not a Bluetooth address (got "E4:AA:EC:81:21"); '
            "expected six hex pairs like E4:AA:EC:81:21:AE",
        ),
        (
            'address = "E4:AA:EC:81:21:AE"\nbindkey = "017e52d2"',
            'sources[0].sensors[0].bindkey: not a bindkey (got "017e52d2"); expected 32 hex digits',
        ),
        (
            'address = "E4:AA:EC:81:21:AE"\nbindkey_file = "keys/door.key"',
            'sources[0].sensors[0].bindkey_file: must be an absolute path (got "keys/door.key"); '
            "expected e.g. /etc/lintel/keys/door-back.key",
        ),
        (
            'address = "E4:AA:EC:81:21:AE"\nbindkey = "017e52d2684779298709b117c0a75a7b"\n'
            'bindkey_file = "/k"',
            'sources[0].sensors[0].bindkey_file: set bindkey or bindkey_file, not both (got "/k")',
        ),
    ],
    ids=["short address", "short key", "relative key file", "two keys"],
)
def test_bad_ble_sensor_config_names_key_value_and_fix(sensor: str, expected: str) -> None:
    found = problems(BLE_BASE + sensor + "\n")
    assert any(p.startswith(expected) for p in found), found


def test_ble_key_file_is_checked_at_load(tmp_path: Path) -> None:
    key = tmp_path / "door.key"
    key.write_text("not a key\n")
    config = tmp_path / "lintel.toml"
    config.write_text(
        BLE_BASE.replace('site = "site-a"', f'site = "site-a"\nstate_dir = "{tmp_path / "state"}"')
        + f'address = "E4:AA:EC:81:21:AE"\nbindkey_file = "{key}"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert [str(p) for p in err.value.problems] == [
        f'sources[0].sensors[0].bindkey_file: file does not hold a bindkey (got "{key}"); expected 32 hex '
        "digits (the 16-byte bindkey, e.g. from the Xiaomi cloud or the Shelly app)"
    ]
    key.write_text("017e52d2684779298709b117c0a75a7b\n")
    assert load_config(config).config.sources[0].sensors[0].key() == bytes.fromhex(  # type: ignore[union-attr]
        "017e52d2684779298709b117c0a75a7b"
    )


LANE_BASE = """
[gateway]
id = "gw1"
site = "site-a"
[[sources]]
id = "cam-1"
type = "camera"
url = "rtsp://10.0.0.5/sub"
[[fire_lanes]]
id = "lane-1"
"""


@pytest.mark.parametrize(
    ("lane", "expected"),
    [
        (
            'camera = "cam-2"\npolygon = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9]]',
            'fire_lanes[0].camera: unknown camera (got "cam-2"); expected the id of a [[sources]] entry '
            'of type camera (cam-1) - did you mean "cam-1"?',
        ),
        (
            'camera = "cam-1"\npolygon = [[0.1, 0.5], [1.9, 0.5], [0.9, 0.9]]',
            "fire_lanes[0].polygon: corner [1.9, 0.5] is outside the picture (got [1.9, 0.5]); "
            "expected x and y between 0 and 1 (fractions of the image width and height)",
        ),
        (
            'camera = "cam-1"\npolygon = [[0.1, 0.5], [0.9, 0.5]]',
            "fire_lanes[0].polygon: a lane needs at least 3 corners (got 2)",
        ),
        (
            'camera = "cam-1"\npolygon = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9]]\n'
            '[[fire_lanes.exempt]]\nfrom = "7am"\nto = "09:00"',
            "fire_lanes[0].exempt[0].from: not a time of day",
        ),
    ],
)
def test_bad_fire_lane_names_key_value_and_fix(lane: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(LANE_BASE + lane)), problems(LANE_BASE + lane)


def test_camera_password_in_url_is_refused() -> None:
    text = LANE_BASE.replace("rtsp://10.0.0.5/sub", "rtsp://admin:secret@10.0.0.5/sub")
    text += 'camera = "cam-1"\npolygon = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9]]'
    found = problems(text)
    assert any(p.startswith("sources[0].url: the password is written in the url") for p in found), found
    assert not any("secret" in p for p in found)


FACE_BASE = """
[gateway]
id = "gw1"
site = "site-a"
[[sources]]
id = "bus-1"
type = "modbus"
endpoint = "tcp://127.0.0.1:5020"
[[sources.meters]]
id = "m1"
unit = 1
profile = "eastron_sdm120"
[[sources]]
id = "cam-door"
type = "camera"
url = "rtsp://10.0.0.6/sub"
[[doors]]
id = "lobby"
[doors.relay]
type = "modbus_coil"
bus = "bus-1"
unit = 9
coil = 0
"""


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            '[[face_access]]\nid = "f1"\ncamera = "cam-dor"\ndoor = "lobby"',
            'face_access[0].camera: unknown camera (got "cam-dor"); expected the id of a [[sources]] entry '
            'of type camera (cam-door) - did you mean "cam-door"?',
        ),
        (
            '[[face_access]]\nid = "f1"\ncamera = "cam-door"\ndoor = "lobbby"',
            'face_access[0].door: unknown door (got "lobbby"); expected the id of a [[doors]] entry '
            '(the relay a grant pulses) (lobby) - did you mean "lobby"?',
        ),
        (
            '[faces]\nk = 6\nn = 5\n[[face_access]]\nid = "f1"\ncamera = "cam-door"\ndoor = "lobby"',
            "faces.k: k is above n (got 6); expected k ≤ n (k of the last n frames must agree; n is 5)",
        ),
        (
            '[faces]\nliveness = "blink"\n[[face_access]]\nid = "f1"\ncamera = "cam-door"\ndoor = "lobby"',
            "faces.liveness:",
        ),
    ],
)
def test_bad_face_access_names_key_value_and_fix(entry: str, expected: str) -> None:
    found = problems(FACE_BASE + entry)
    assert any(p.startswith(expected) for p in found), found


def test_face_models_must_be_face_models(tmp_path: Path) -> None:
    config = tmp_path / "lintel.toml"
    entrance = '[[face_access]]\nid = "f1"\ncamera = "cam-door"\ndoor = "lobby"\n'
    base = FACE_BASE.replace('site = "site-a"', f'site = "site-a"\nstate_dir = "{tmp_path}"')
    config.write_text(base + '[faces]\nembedder = "yolov2-tiny-coco"\n' + entrance)
    with pytest.raises(ConfigError) as info:
        load_config(config)
    found = [str(p) for p in info.value.problems]
    expected = 'faces.embedder: unknown model (got "yolov2-tiny-coco"); expected one of: sface-2021dec'
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("state_dir = '/proc/lintel-test/state'\n", "gateway.state_dir: folder cannot be created or written"),
        ("[log]\nlevel = " + "[" * 3000 + "]" * 3000 + "\n", "log.level (line 6): values nested too deeply"),
        (
            "[mqtt]\nurl = 'mqtt://gw:hunter2@broker'\n",
            'mqtt.url: credentials must not be inline in the URL (got "mqtt://gw:***@broker")',
        ),
    ],
    ids=["uncreatable state_dir", "deep nesting", "URL with a password"],
)
def test_lintel_run_refuses_with_78_a_message_and_no_traceback(
    tmp_path: Path, body: str, expected: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE + body)
    run = lintel_output("run", "-c", str(cfg))
    assert run.returncode == 78, run.stderr
    assert expected in run.stderr and "Traceback" not in run.stderr and "hunter2" not in run.stderr
    check = lintel_output("check-config", "-c", str(cfg))
    assert check.returncode == 78 and expected in check.stdout
    assert "hunter2" not in check.stdout + check.stderr


def test_check_config_prints_the_plain_mqtt_password_warning(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        BASE + f"state_dir = '{tmp_path}'\n[mqtt]\nurl = 'mqtt://broker.example'\nusername = 'u'\n"
        "password_file = 'pw'\n"
    )
    check = lintel_output("check-config", "-c", str(cfg))
    assert check.returncode == 0
    assert "warning: mqtt.url: the MQTT password travels unencrypted over plain mqtt://" in check.stderr


def test_liveness_off_is_allowed_but_check_config_warns(tmp_path: Path) -> None:
    from tests.support.process import lintel_output

    config = tmp_path / "lintel.toml"
    entrance = '[[face_access]]\nid = "f1"\ncamera = "cam-door"\ndoor = "lobby"\n'
    base = FACE_BASE.replace('site = "site-a"', f'site = "site-a"\nstate_dir = "{tmp_path / "state"}"')
    key = f'[faces]\nkey_file = "{tmp_path / "etc" / "faces.key"}"\n'  # not beside the gallery
    config.write_text(base + key + entrance)
    assert load_config(config).config.faces.liveness == "model"  # the default
    clean = lintel_output("check-config", "-c", str(config))
    assert "warning" not in clean.stdout + clean.stderr
    config.write_text(base + key + 'liveness = "off"\n' + entrance)
    out = lintel_output("check-config", "-c", str(config))
    assert out.returncode == 0, out.stderr
    assert (
        "warning: faces.liveness: off at f1 — a printed photograph or a phone held to the camera "
        "opens the door" in (" ".join((out.stdout + out.stderr).split()))
    ), out.stdout + out.stderr


def test_liveness_per_entrance_and_the_pad_models_are_checked(tmp_path: Path) -> None:
    from tests.support.process import lintel_output

    config = tmp_path / "lintel.toml"
    base = FACE_BASE.replace('site = "site-a"', f'site = "site-a"\nstate_dir = "{tmp_path}"')
    entrance = '[[face_access]]\nid = "f1"\ncamera = "cam-door"\ndoor = "lobby"\n'
    config.write_text(base + entrance + 'liveness = "micro_motion"\n')
    loaded = load_config(config).config
    assert loaded.faces.liveness_of(loaded.face_access[0]) == "micro_motion"
    assert not loaded.faces.needs_pad(loaded.face_access)
    # an unknown detector model is refused only where an entrance needs it, naming the key
    config.write_text(
        base + '[faces]\npad_models = ["no-such-pad"]\n' + entrance + 'liveness = "micro_motion"\n'
    )
    assert lintel_output("check-config", "-c", str(config)).returncode == 0
    config.write_text(base + '[faces]\npad_models = ["no-such-pad"]\n' + entrance)
    out = lintel_output("check-config", "-c", str(config))
    assert out.returncode != 0
    text = " ".join((out.stdout + out.stderr).split())
    assert "faces.pad_models" in text and "no-such-pad" in text and "minifasnet-v2-2.7" in text, text
