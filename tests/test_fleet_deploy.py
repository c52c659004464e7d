"""A deployment through the fleet to a real gateway: `lintel-fleet deploy` signs `reload_config`
with the operator's key, the gateway applies the new tunable and reports `config_reloaded`, and the
rollout reads that report (fleet/reports.py) to settle the gateway as succeeded."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from gateway.commands.signing import new_key, public_key_b64, write_private_key
from tests.conftest import gateway_toml
from tests.support.configs import commands_toml, threshold_rule_toml
from tests.support.fleet_db import scalar, wait_for
from tests.support.fleet_procs import PersistentMosquitto, start_worker, stop_process, wait_subscribed
from tests.support.fleet_sim import ROOT
from tests.support.process import lintel, wait_status


def config_text(tmp_path: Path, port: int, public_key: str, above: int) -> str:
    sources = '[[sources]]\nid = "sim"\ntype = "simulated"\ninterval_s = 0.5\n'
    mqtt = f'url = "mqtt://127.0.0.1:{port}"\nstats_interval_s = 1\n'
    text = gateway_toml(tmp_path / "state", mqtt=mqtt, sources=sources)
    operator = {"id": "operator", "public_key": public_key, "allow": ["reload_config"]}
    commands = commands_toml(["ping", "reload_config"], [operator])
    return text + commands + threshold_rule_toml("sim", above, rule_id="hot")


def test_deploy_reaches_a_real_gateway_and_the_rollout_reads_its_report(
    tmp_path: Path, fleet_dsn: str
) -> None:
    broker = PersistentMosquitto(tmp_path).start()
    worker = start_worker(fleet_dsn, broker.port, "w1", tmp_path)
    key = new_key()
    write_private_key(tmp_path / "op.key", key, "operator")
    config = tmp_path / "lintel.toml"
    config.write_text(config_text(tmp_path, broker.port, public_key_b64(key), 100))
    new = tmp_path / "new.toml"
    new.write_text(config_text(tmp_path, broker.port, public_key_b64(key), 5000))
    proc = None
    try:
        wait_subscribed(tmp_path, "w1")
        proc = lintel("run", "-c", str(config))
        wait_for(lambda: scalar(fleet_dsn, "SELECT count(*) FROM gateways WHERE births > 0"), 60, "the birth")
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LINTEL_FLEET_DB": fleet_dsn,
            "LINTEL_FLEET_BROKER": f"mqtt://127.0.0.1:{broker.port}",
        }
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "fleet.cli",
                "--log-level",
                "warning",
                "deploy",
                "--key",
                str(tmp_path / "op.key"),
                "--config",
                str(new),
                "--gateways",
                "all",
                "--canary-share",
                "1",
                "--follow",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout.splitlines()[-1])
        assert doc["state"] == "done", doc
        assert doc["target"] == hashlib.sha256(new.read_bytes()).hexdigest()
        assert [m["state"] for m in doc["members"]] == ["succeeded"]
        # the gateway runs the new config, and said so to the fleet
        status = wait_status(config, lambda s: s.get("config_sha256") == doc["target"], timeout=30)
        assert status["config_sha256"] == doc["target"]
        assert scalar(fleet_dsn, "SELECT outcome FROM commands WHERE command = 'reload_config'") == "ok"
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        stop_process(worker)
        broker.stop()
