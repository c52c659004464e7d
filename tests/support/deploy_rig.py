"""A gateway for deployment tests and benchmarks: `lintel run` on mosquitto with passwords and a
pymodbus bus (two meters, a relay module), a collector, and an operator allowed `deploy_config`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from drivers.modbus.simulator import SimulatedMeter, SimulatedRelayModule
from gateway.commands.signing import deployment, new_key, public_key_b64, sign
from tests.conftest import gateway_toml
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.commander import (
    GATEWAY_ID,
    OPERATOR_ID,
    OPERATOR_KEY,
    SITE,
    Commander,
    envelope,
    operator_toml,
)
from tests.support.configs import meter_bus_toml, mqtt_toml
from tests.support.mjpeg_server import MjpegServer
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel

USER, OLD_PASSWORD = "gw-test", "old-pass-7Hq"
NEW_USER = "gw-test-2026"
NEW_PASSWORD = "rotated-S3cret-9Zx"  # must appear nowhere but in the broker's password file
PROBATION_S = 1.5
DEPLOY_TOPIC = "lintel/site-a/gw-test/command/deployment"
GUARD_KEY = new_key()  # an operator key without the config role


def set_password(path: Path, password: str, user: str = USER, create: bool = True) -> None:
    first = ["-c"] if create else []
    subprocess.run(["mosquitto_passwd", *first, "-b", str(path), user, password], check=True)


class Rig:
    def __init__(self, tmp_path: Path, env: dict[str, str] | None = None) -> None:
        self.tmp_path = tmp_path
        self.passwd = tmp_path / "passwd"
        set_password(self.passwd, OLD_PASSWORD)
        self.broker = Mosquitto(
            tmp_path, allow_anonymous=True, extra=[f"password_file {self.passwd}"]
        ).start()
        self.relay = SimulatedRelayModule(unit=9)
        self.modbus = ModbusThread(
            [
                SimulatedMeter(unit=1, profile="eastron_sdm120"),
                SimulatedMeter(unit=2, profile="eastron_sdm120"),
                self.relay,
            ]
        ).start()
        (tmp_path / "mqtt.pass").write_text(OLD_PASSWORD + "\n")
        self.config = tmp_path / "lintel.toml"
        mqtt = mqtt_toml(
            self.broker.port, f'username = "{USER}"\npassword_file = "{tmp_path / "mqtt.pass"}"\n'
        )
        allow = ["ping", "deploy_config", "reload_config"]
        commands = f'\n[commands]\nallow = {json.dumps(allow)}\nclock_sync = "assume"\n' + operator_toml(
            allow
        )
        commands += operator_toml(["ping"], key_id="guard").replace(
            public_key_b64(OPERATOR_KEY), public_key_b64(GUARD_KEY)
        )
        text = gateway_toml(tmp_path / "state", mqtt=mqtt, sources=meter_bus_toml(self.modbus.port), extra="")
        text = text.replace(
            "[outbox]",
            f"[runtime]\nstatus_interval_s = 0.2\n\n[deploy]\nprobation_s = {PROBATION_S}\n\n[outbox]",
        )
        self.config.write_text(text + commands)
        self.collector = Collector(self.broker.port, auth=None).start()
        self.commander = Commander(self.broker.port)
        self.proc: Any = lintel("run", "-c", str(self.config), env=env)
        self.version = 0
        self.servers: list[MjpegServer] = []
        self.held: list[Any] = []  # sockets a test keeps bound (ports nobody may take)
        assert self.collector.wait_for(lambda c: self.births() >= 1, 30), "no birth"

    # -- looking -------------------------------------------------------------------------------------
    def births(self) -> int:
        return len([m for m in self.collector.snapshot() if m.topic.endswith("/birth")])

    def last_birth(self) -> dict[str, Any]:
        return [m.payload for m in self.collector.snapshot() if m.topic.endswith("/birth")][-1]

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m.payload["attrs"] for m in self.collector.data() if m.topic.endswith(f"/{kind}")]

    def outcome(self, version: int, timeout: float = 30) -> str:
        kinds = ("config_applied", "config_rejected", "config_rolled_back", "config_diverged")

        def found() -> str | None:
            for kind in kinds:
                if any(e.get("version") == version for e in self.events(kind)):
                    return kind
            return None

        self.collector.wait_for(lambda _c: found() is not None, timeout)
        return found() or "none"

    def status(self) -> dict[str, Any]:
        return json.loads((self.tmp_path / "state" / "run" / "status.json").read_text())

    # -- doing ---------------------------------------------------------------------------------------
    def deploy_key(self) -> str:
        return str(self.last_birth()["config"]["deploy_key"])

    def deployment(
        self, text: str, version: int | None = None, secrets: dict[str, str] | None = None
    ) -> dict[str, Any]:
        if version is None:
            self.version += 1
            version = self.version
        return deployment(
            text,
            version,
            gateway_id=GATEWAY_ID,
            site=SITE,
            gateway_public_key=self.deploy_key(),
            secrets=secrets,
        )

    def publish(self, body: dict[str, Any]) -> None:
        """As the office does: retained on the gateway's deployment topic."""
        payload = json.dumps(body).encode()
        self.commander.client.publish(DEPLOY_TOPIC, payload, qos=1, retain=True).wait_for_publish(5)

    def signed(
        self, body: dict[str, Any], key: Any = OPERATOR_KEY, key_id: str = OPERATOR_ID
    ) -> dict[str, Any]:
        return sign(body, key, key_id)

    def ping(self) -> dict[str, Any]:
        return self.commander.call(envelope("ping"), timeout=30)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                _, err = self.proc.communicate(timeout=30)
                print(err.decode()[-6000:])  # shown by pytest when the test failed
        finally:
            self.commander.close()
            self.collector.stop()
            self.broker.stop()
            self.modbus.stop()
            for server in self.servers:
                server.stop()
            for held in self.held:
                held.close()

    def log(self) -> str:
        return self.proc.stderr.read().decode() if self.proc.stderr else ""
