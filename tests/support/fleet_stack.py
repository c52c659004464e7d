"""A fleet with real buildings: `lintel demo` gateways (each its own site and gateway id, trusting
the fleet's ack-only key), ingest workers and `lintel-fleet serve`, on one broker and PostgreSQL."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gateway.commands.signing import new_key, public_key_b64, write_private_key
from tests.support.broker import free_port, wait_port
from tests.support.configs import commands_toml, threshold_rule_toml
from tests.support.fleet_sim import ROOT

ACK_KEY_ID = "fleet-ack"


def building_extra(ack_public_key: str) -> str:
    """What a building adds to the demo config: the fleet's key, allowed `alarm_ack` only, and a
    rule that opens an alarm at once (the house draws ~2.5 kW), so each building has one."""
    operator = {"id": ACK_KEY_ID, "public_key": ack_public_key, "allow": ["alarm_ack"]}
    return commands_toml(["ping", "alarm_ack"], [operator]) + threshold_rule_toml(
        "meter-house", 100, rule_id="fleet-demo-load"
    )


@dataclass
class FleetStack:
    workdir: Path
    dsn: str
    broker_port: int

    def __post_init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.token = secrets.token_hex(16)
        (self.workdir / "token").write_text(self.token + "\n")
        key = new_key()
        self.ack_key = self.workdir / "fleet-ack.key"
        write_private_key(self.ack_key, key, ACK_KEY_ID)
        self.extra = self.workdir / "building.toml"
        self.extra.write_text(building_extra(public_key_b64(key)))
        self.web_port = free_port()

    def _spawn(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen([sys.executable, *argv], stdout=log, stderr=log, env=env, cwd=self.workdir)
        self.procs.append(proc)
        return proc

    @property
    def broker(self) -> str:
        return f"mqtt://127.0.0.1:{self.broker_port}"

    def building(self, site: str, gateway_id: str) -> Path:
        state = self.workdir / gateway_id
        self._spawn(
            gateway_id,
            "-m",
            "gateway.cli.main",
            "demo",
            "--plain",
            "--broker",
            self.broker,
            "--state-dir",
            str(state),
            "--site",
            site,
            "--gateway-id",
            gateway_id,
            "--config-extra",
            str(self.extra),
        )
        return state / "config.toml"

    def serve(self) -> str:
        self._spawn(
            "web",
            "-m",
            "fleet.cli",
            "serve",
            "--db",
            self.dsn,
            "--broker",
            self.broker,
            "--listen",
            f"127.0.0.1:{self.web_port}",
            "--token-file",
            str(self.workdir / "token"),
            "--ack-key",
            str(self.ack_key),
        )
        wait_port(self.web_port, 60)
        return f"http://127.0.0.1:{self.web_port}"

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
