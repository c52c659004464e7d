"""The page's guards, over HTTP: nothing without the token, forms need their CSRF token, and what
a gateway sent is escaped (a gateway is not trusted to write HTML into the operators' browser)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from fleet import db
from fleet.messages import Message, Rejected, parse
from fleet.store import Store
from tests.support.broker import free_port, wait_port
from tests.support.fleet_sim import ROOT

TOKEN = "t0ken-for-the-fleet-page-test-0123"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def request(
    url: str, data: bytes | None = None, token: str | None = TOKEN
) -> tuple[int, str, dict[str, str]]:
    req = urllib.request.Request(url, data=data)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def test_page_needs_the_token_checks_csrf_and_escapes_what_gateways_send(
    tmp_path: Path, fleet_dsn: str
) -> None:
    hostile = "<script>alert(1)</script>"
    topic = "lintel/riverside/gw-1/alarm/meter-1/threshold_exceeded"
    payload = {
        "schema": "lintel.event/1",
        "gateway_id": "gw-1",
        "seq": 1,
        "ts_ms": 1,
        "source_id": hostile,
        "kind": "threshold_exceeded",
        "severity": "alarm",
        "attrs": {"alarm_id": "7"},
    }
    # a site no gateway can have never gets in
    assert isinstance(
        parse(topic.replace("riverside", "<img src=x>"), json.dumps(payload).encode()), Rejected
    )
    msg = parse(topic, json.dumps(payload).encode())
    assert isinstance(msg, Message)
    # and in what the building's page shows: a device, its point and error, a component, the
    # uplink, a fire lane and its reason
    device = {"device_id": hostile, "source_id": "bus", "kind": "meter", "online": False, "errors": 1}
    device |= {"last_error": hostile, "points": [{"name": "power_w", "value": hostile, "unit": "W"}]}
    stats = {"schema": "lintel.stats/1", "gateway_id": "gw-1", "seq": 2, "ts_ms": 2, "devices": [device]}
    stats |= {"components": [{"name": hostile, "state": hostile}], "uplink": {"state": hostile}}
    lane = {**payload, "seq": 3, "ts_ms": time.time_ns() // 1_000_000, "kind": "fire_lane_unknown"}
    lane["severity"] = "warning"
    lane["attrs"] = {"reason": hostile, "camera": hostile}
    extra = [
        parse("lintel/riverside/gw-1/stats", json.dumps(stats).encode()),
        parse(
            "lintel/riverside/gw-1/event/x/fire_lane_unknown",
            json.dumps(lane | {"ts_ms": 10**12 * 2}).encode(),
        ),
    ]
    assert all(isinstance(m, Message) for m in extra), extra
    with db.connect(fleet_dsn) as conn:
        Store(conn).write([msg, *extra])  # type: ignore[list-item]
    (tmp_path / "token").write_text(TOKEN)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleet.cli",
            "serve",
            "--db",
            fleet_dsn,
            "--listen",
            f"127.0.0.1:{port}",
            "--token-file",
            str(tmp_path / "token"),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, 60)
        base = f"http://127.0.0.1:{port}"
        assert request(base + "/healthz", token=None)[0] == 200
        status, _, headers = request(base + "/alarms", token=None)
        assert status == 303 and headers["Location"] == "/login"
        assert request(base + "/alarms", token="wrong-token-wrong-token")[0] == 303
        assert request(base + "/login", data=b"token=nope", token=None)[0] == 403
        status, _, headers = request(base + "/login", data=f"token={TOKEN}".encode(), token=None)
        assert (
            status == 303
            and "HttpOnly" in headers["Set-Cookie"]
            and "SameSite=Strict" in headers["Set-Cookie"]
        )

        status, body, headers = request(base + "/alarms")
        assert status == 200 and "default-src 'none'" in headers["Content-Security-Policy"]
        assert hostile not in body and "&lt;script&gt;" in body
        status, body, _ = request(base + "/gateway/gw-1")
        assert status == 200 and hostile not in body
        for panel in ("meters", "components", "uplink", "fire-lanes"):
            section = body.split(f"id='{panel}'", 1)[1].split("</table>", 1)[0]
            assert "&lt;script&gt;" in section, panel
        assert request(base + "/gateway/..%2Fetc")[0] == 404

        # an acknowledgement without the form's CSRF token, or with no ack key configured
        form = b"gateway_id=gw-1&alarm_id=7"
        assert request(base + "/alarms/ack", data=form)[0] == 403
        assert request(base + "/alarms/ack", data=b"x=" + b"a" * 10_000)[0] == 413
        from fleet.web import FleetWeb

        csrf = FleetWeb(fleet_dsn, TOKEN, None, None).csrf()
        assert request(base + "/alarms/ack", data=form + f"&csrf={csrf}".encode())[0] == 409
        assert (
            request(base + "/alarms/ack", data=b"gateway_id=gw-1&alarm_id=7%3B1&csrf=" + csrf.encode())[0]
            == 400
        )
    finally:
        proc.terminate()
        proc.wait(20)
