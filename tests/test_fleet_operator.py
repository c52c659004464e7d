"""Operator tools: signed commands matched to their results, and rollouts in waves that halt on
rollbacks. The gateways here answer like a gateway: they check the operator's signature over the
canonical envelope, answer on command/result and report `updated` / `update_rolled_back`."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion

from gateway.commands.canonical import SIG_FIELD, canonical_bytes
from gateway.commands.signing import new_key, public_key_b64, write_private_key
from tests.support.fleet_db import scalar, wait_for
from tests.support.fleet_procs import start_worker, wait_subscribed
from tests.support.fleet_sim import ROOT, Sender, SimGateway


class Responder:
    """Simulated gateways answering commands; `rolls_back` update and then return to their old release."""

    def __init__(self, port: int, gateways: list[SimGateway], public_key: str, rolls_back: set[str]) -> None:
        self.gateways = {g.gateway_id: g for g in gateways}
        self.key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        self.rolls_back = rolls_back
        self.received: list[dict[str, Any]] = []
        self.sender = Sender(port, client_id="responder-out")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="responder-in", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe("lintel/+/+/command", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        doc = json.loads(msg.payload)
        self.received.append(doc)
        gw = self.gateways[doc["gateway_id"]]
        unsigned = {k: v for k, v in doc.items() if k != SIG_FIELD}
        try:
            self.key.verify(base64.b64decode(doc[SIG_FIELD]), canonical_bytes(unsigned))
            outcome = "ok"
        except (InvalidSignature, KeyError):
            outcome = "rejected"
        now = time.time_ns() // 1_000_000
        seq = gw._next()
        body = {
            "correlation_id": doc["id"],
            "command": doc["command"],
            "origin": "mqtt",
            "outcome": outcome,
            "by": doc.get("key_id"),
            **({"code": "bad_signature", "reason": "no"} if outcome != "ok" else {}),
        }
        topic, payload = gw.encoder.command_result(seq, now, body)
        self.sender.send(gw.gateway_id, topic, payload, seq)
        if outcome == "ok" and doc["command"] == "update":
            version = doc["args"]["version"]
            kind = "update_rolled_back" if gw.gateway_id in self.rolls_back else "updated"
            self.sender.send(
                gw.gateway_id, *gw.event(now, kind, {"version": version, "reason": "probation failed"})
            )

    def close(self) -> None:
        self.client.loop_stop()
        self.sender.close()


def fleet_cli(dsn: str, port: int, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LINTEL_FLEET_DB": dsn,
        "LINTEL_FLEET_BROKER": f"mqtt://127.0.0.1:{port}",
    }
    return subprocess.run(
        [sys.executable, "-m", "fleet.cli", "--log-level", "warning", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_update_goes_out_in_waves_and_halts_when_rollbacks_exceed_the_limit(
    tmp_path, fleet_dsn, fleet_broker
):
    worker = start_worker(fleet_dsn, fleet_broker.port, "w1", tmp_path)
    key = new_key()
    write_private_key(tmp_path / "op.key", key, "operator")
    gateways = [SimGateway(f"gw-{i:02d}", "estate", meters=1, sensors=0) for i in range(10)]
    # waves: 1 (canary), 2, 4, 3; two gateways of the third wave roll back
    responder = Responder(fleet_broker.port, gateways, public_key_b64(key), rolls_back={"gw-03", "gw-04"})
    try:
        wait_subscribed(tmp_path, "w1")
        sender = Sender(fleet_broker.port)
        for gw in gateways:
            sender.send(gw.gateway_id, *gw.birth(time.time_ns() // 1_000_000))
        wait_for(
            lambda: scalar(fleet_dsn, "SELECT count(*) FROM gateways WHERE births = 1") == 10, what="births"
        )

        out = fleet_cli(
            fleet_dsn,
            fleet_broker.port,
            "update",
            "--key",
            str(tmp_path / "op.key"),
            "--version",
            "0.2.0",
            "--gateways",
            "all",
            "--canary-share",
            "0.1",
            "--max-rollbacks",
            "0.25",
        )
        assert out.returncode == 0, out.stderr
        rollout_id = out.stdout.split()[0]
        # only the canary was sent; it reports updated; the next run sends wave 1, and so on
        wait_for(lambda: responder.received, what="the canary's command")
        assert [d["gateway_id"] for d in responder.received] == ["gw-00"]
        states: list[str] = []
        for _ in range(5):
            wait_for(
                lambda: scalar(fleet_dsn, "SELECT count(*) FROM rollout_members WHERE state = 'sent'") == 0,
                what="the wave's reports",
            )
            out = fleet_cli(
                fleet_dsn, fleet_broker.port, "rollout", rollout_id, "--key", str(tmp_path / "op.key")
            )
            states.append(json.loads(out.stdout.splitlines()[-1])["state"])
            if states[-1] != "running":
                break
        doc = json.loads(out.stdout.splitlines()[-1])
        by_gateway = {m["gateway_id"]: m["state"] for m in doc["members"]}
        assert doc["state"] == "halted", doc
        # judged on every report: it halts as soon as the share is exceeded, mid-wave
        assert re.match(r"2 of [567] gateways that reported rolled back", doc["halted_reason"])
        assert by_gateway["gw-00"] == by_gateway["gw-01"] == by_gateway["gw-02"] == "succeeded"
        assert by_gateway["gw-03"] == by_gateway["gw-04"] == "rolled_back"
        assert {by_gateway[f"gw-0{i}"] for i in range(7, 10)} == {"pending"}  # never sent
        assert len(responder.received) == 7
        # each command was signed by the operator and its result matched to it
        assert all(d["key_id"] == "operator" for d in responder.received)
        assert (
            scalar(
                fleet_dsn,
                "SELECT count(*) FROM commands WHERE outcome = 'ok' AND rollout_id = %s",
                rollout_id,
            )
            == 7
        )
    finally:
        responder.close()
        worker.terminate()
        worker.wait(20)


def test_command_prints_the_matched_result_and_the_read_tools_list_the_fleet(
    tmp_path, fleet_dsn, fleet_broker
):
    worker = start_worker(fleet_dsn, fleet_broker.port, "w1", tmp_path)
    key, other = new_key(), new_key()
    write_private_key(tmp_path / "op.key", key, "operator")
    write_private_key(tmp_path / "forged.key", other, "operator")  # right id, wrong key
    gw = SimGateway("bldg-01", "riverside", meters=2, sensors=0)
    responder = Responder(fleet_broker.port, [gw], public_key_b64(key), rolls_back=set())
    try:
        wait_subscribed(tmp_path, "w1")
        sender = Sender(fleet_broker.port)
        now = time.time_ns() // 1_000_000
        for item in [gw.birth(now), gw.alarm(now), gw.stats(now, offline=1)]:
            sender.send(gw.gateway_id, *item)
        wait_for(lambda: scalar(fleet_dsn, "SELECT count(*) FROM devices") == 2, what="devices")

        out = fleet_cli(
            fleet_dsn,
            fleet_broker.port,
            "command",
            "--key",
            str(tmp_path / "op.key"),
            "bldg-01",
            "door_pulse",
            '{"door": "lobby"}',
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["outcome"] == "ok"
        out = fleet_cli(
            fleet_dsn, fleet_broker.port, "ack", "--key", str(tmp_path / "forged.key"), "bldg-01", "1"
        )
        assert out.returncode == 1 and json.loads(out.stdout)["code"] == "bad_signature"
        out = fleet_cli(
            fleet_dsn, fleet_broker.port, "command", "--key", str(tmp_path / "op.key"), "nowhere", "ping"
        )
        assert out.returncode == 1 and "no gateway 'nowhere'" in out.stderr

        listed = json.loads(fleet_cli(fleet_dsn, fleet_broker.port, "gateways", "--json").stdout)
        assert [(g["gateway_id"], g["alarms_open"], g["devices_offline"]) for g in listed] == [
            ("bldg-01", 1, 1)
        ]
        alarms = json.loads(fleet_cli(fleet_dsn, fleet_broker.port, "alarms", "--json").stdout)
        assert [(a["alarm_id"], a["state"]) for a in alarms] == [("1", "open")]
        devices = json.loads(fleet_cli(fleet_dsn, fleet_broker.port, "devices", "--json").stdout)
        assert sorted((d["device_id"], d["online"]) for d in devices) == [
            ("meter-0", False),
            ("meter-1", True),
        ]
    finally:
        responder.close()
        worker.terminate()
        worker.wait(20)
