"""A real Home Assistant core against `lintel demo` with the Home Assistant bridge (issue 21).

Home Assistant is too heavy for the suite: install an older release that runs on Python 3.11 in a
venv of its own, with the requirements of the integrations it loads (MQTT, and onboarding's
recorder and person; it is started with --skip-pip):

    python3 -m venv /tmp/ha-venv
    /tmp/ha-venv/bin/pip install homeassistant==2024.1.6 paho-mqtt==1.6.1 SQLAlchemy==2.0.23 \
        fnv-hash-fast==0.5.0 psutil-home-assistant==0.0.1 Pillow==10.1.0 janus==1.0.0
    .venv/bin/python bench/ha_real.py --hass /tmp/ha-venv/bin/hass [--seconds 120]

It starts mosquitto, Home Assistant (onboarded through its REST API, the MQTT integration added
through its config flow), then the demo building publishing to the broker, and reads Home
Assistant's state API: every meter point, door and fire lane of the demo must appear as an entity
with the right device class and unit, doors must change state, and a stopped gateway must make its
entities unavailable. Prints what it found and exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Broker, free_port, print_table

CLIENT = "http://127.0.0.1/"
# friendly name (HA device name + our entity name) -> (domain, device_class, unit)
EXPECTED = {
    "meter-1a energy import kwh": ("sensor", "energy", "kWh"),
    "meter-1a power w": ("sensor", "power", "W"),
    "meter-1a voltage v": ("sensor", "voltage", "V"),
    "water-1 volume m3": ("sensor", "water", "m³"),
    "door-front door open": ("binary_sensor", "door", None),
    "door-back door open": ("binary_sensor", "door", None),
    "lane-court blocked": ("binary_sensor", "problem", None),
}


def http(url: str, data: Any = None, token: str | None = None, form: bool = False) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = None
    if data is not None:
        if form:
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, body, headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def wait(predicate: Any, timeout: float, step: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = predicate()
            if got:
                return got
        except OSError:
            pass
        time.sleep(step)
    return None


def start_hass(hass: str, cfg: Path, port: int) -> subprocess.Popen[bytes]:
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "configuration.yaml").write_text(
        "homeassistant:\n  name: lintel-bench\n  latitude: 0\n  longitude: 0\n  elevation: 0\n"
        "  unit_system: metric\n  time_zone: UTC\n  currency: EUR\n"
        f"http:\n  server_host: 127.0.0.1\n  server_port: {port}\n"
        "onboarding:\nconfig:\napi:\n"
    )
    return subprocess.Popen(
        [hass, "-c", str(cfg), "--skip-pip", "--log-file", str(cfg / "ha.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def onboard(base: str, broker_port: int) -> str:
    assert wait(lambda: http(f"{base}/api/onboarding") is not None, 180), "Home Assistant did not answer"
    user = http(
        f"{base}/api/onboarding/users",
        {
            "client_id": CLIENT,
            "name": "bench",
            "username": "bench",
            "password": "bench-pass-1",
            "language": "en",
        },
    )
    token = http(
        f"{base}/auth/token",
        {"grant_type": "authorization_code", "code": user["auth_code"], "client_id": CLIENT},
        form=True,
    )["access_token"]
    flow = http(f"{base}/api/config/config_entries/flow", {"handler": "mqtt"}, token)
    done = http(
        f"{base}/api/config/config_entries/flow/{flow['flow_id']}",
        {"broker": "127.0.0.1", "port": broker_port},
        token,
    )
    assert done.get("type") == "create_entry", done
    return str(token)


def states(base: str, token: str) -> dict[str, dict[str, Any]]:
    return {
        s["attributes"].get("friendly_name", s["entity_id"]): s
        for s in http(f"{base}/api/states", token=token)
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hass", required=True, help="the hass executable of a Home Assistant venv")
    ap.add_argument("--seconds", type=float, default=120, help="longest wait for the entities")
    args = ap.parse_args()
    broker = Broker()
    work = Path(tempfile.mkdtemp(prefix="lintel-ha-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    hass = start_hass(args.hass, work / "ha", port)
    demo: subprocess.Popen[bytes] | None = None
    rows: list[tuple[str, str, str]] = []
    failed = False
    try:
        t0 = time.monotonic()
        token = onboard(base, broker.port)
        rows.append(("Home Assistant up, MQTT added", f"{time.monotonic() - t0:.1f} s", "2024.1.6"))
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli.main",
                "demo",
                "--plain",
                "--state-dir",
                str(work / "demo"),
                "--broker",
                f"mqtt://127.0.0.1:{broker.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        t1 = time.monotonic()

        def all_there() -> dict[str, dict[str, Any]] | None:
            now = states(base, token)
            return now if set(EXPECTED) <= set(now) else None

        got = wait(all_there, args.seconds, 1.0)
        now = got or states(base, token)
        rows.append(
            ("entities in Home Assistant", str(len(now)), f"{time.monotonic() - t1:.1f} s after start")
        )
        for name, (domain, dc, unit) in EXPECTED.items():
            s = now.get(name)
            ok = (
                s is not None
                and s["entity_id"].startswith(domain + ".")
                and s["attributes"].get("device_class") == dc
                and s["attributes"].get("unit_of_measurement") == unit
            )
            failed |= not ok
            shown = (
                "missing"
                if s is None
                else f"{s['entity_id']} = {s['state']} {s['attributes'].get('unit_of_measurement') or ''}"
            )
            rows.append((name, shown, "ok" if ok else f"want {domain} {dc} {unit}"))

        def open_alarms() -> dict[str, Any] | None:
            found = [s for s in states(base, token).values() if s["entity_id"].endswith("_open_alarms")]
            ready = found and found[0]["state"].isdigit() and "by_kind" in found[0]["attributes"]
            return found[0] if ready else None

        alarms = wait(open_alarms, 60, 1.0)
        failed |= alarms is None
        rows.append(
            (
                "open alarms sensor",
                "missing" if alarms is None else f"{alarms['entity_id']} = {alarms['state']}",
                "a count, kinds as attributes" if alarms else "want sensor.*_open_alarms",
            )
        )
        seen: set[str] = set()
        wait(
            lambda: (
                seen.update({states(base, token)["door-front door open"]["state"]}) or {"on", "off"} <= seen
            ),
            60,
        )
        failed |= not {"on", "off"} <= seen
        rows.append(("door-front states seen", ", ".join(sorted(seen)), "on and off"))
        demo.send_signal(signal.SIGINT)
        demo.wait(60)
        t2 = time.monotonic()
        gone = wait(lambda: all(states(base, token)[n]["state"] == "unavailable" for n in EXPECTED), 60, 0.2)
        failed |= not gone
        rows.append(
            (
                "entities unavailable after the gateway stopped",
                "yes" if gone else "NO",
                f"{time.monotonic() - t2:.1f} s",
            )
        )
    finally:
        if demo is not None and demo.poll() is None:
            demo.kill()
        hass.send_signal(signal.SIGTERM)
        try:
            hass.wait(60)
        except subprocess.TimeoutExpired:
            hass.kill()
        broker.stop()
    log = (work / "ha" / "ha.log").read_text(errors="replace")
    refused = log.count("when processing MQTT discovery message")
    failed |= refused > 0
    rows.append(("discovery messages Home Assistant refused (its log)", str(refused), "0"))
    print_table("A real Home Assistant against lintel demo (Home Assistant bridge)", rows)
    if failed:
        print(f"FAILED; Home Assistant's log: {work / 'ha' / 'ha.log'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
