"""Presentation attacks through a real `lintel run` (issue 26).

Two attack clips made from photos other than the enrolment one (tests/support/attacks.py), an
animated photo and a slideshow, each looped on two door cameras: one entrance with the default
liveness ("model"), one with `liveness = "off"`: the control, which proves the clip's faces are
recognised as the resident and would open the door. The daemon runs until each control door has
been granted 20 approaches (one grant per approach: the cooldown outlasts an approach's 5 s),
however long a loaded machine takes; over that time each guarded door is granted 0 times, its
relay coil never switched on, and it refuses the resident by liveness whenever it decides.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.modbus.simulator import SimulatedMeter, SimulatedRelayModule
from gateway.lanes.faces.gallery import Gallery
from tests.conftest import gateway_toml
from tests.support.attacks import attack_clip
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.media import photo
from tests.support.modbus_thread import ModbusThread
from tests.support.process import lintel, lintel_output, stop_and_show_log, wait_status

APPROACHES = 20  # granted at each control door before the run ends
KINDS = ("animated_photo", "slideshow")
# (entrance, camera, coil, liveness line)
DOORS = [
    (f"{kind}-{role}", f"cam-{kind}-{role}", coil, "" if role == "guarded" else 'liveness = "off"\n')
    for coil, (kind, role) in enumerate((k, r) for k in KINDS for r in ("guarded", "control"))
]


def config_text(tmp_path: Path, broker: int, modbus: int, clips: dict[str, Path]) -> str:
    mqtt = f'url = "mqtt://127.0.0.1:{broker}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 1\n'
    parts = []
    for door, camera, coil, _liveness in DOORS:
        clip = clips[door.rsplit("-", 1)[0]]
        parts.append(
            f'\n[[sources]]\nid = "{camera}"\ntype = "camera"\nurl = "{clip}"\nloop = true\n'
            f'\n[[doors]]\nid = "{door}"\npulse_s = 0.3\n\n[doors.relay]\ntype = "modbus_coil"\n'
            f'bus = "bus-1"\nunit = 9\ncoil = {coil}\n'
        )
    entrances = "".join(
        f'\n[[face_access]]\nid = "{door}-face"\ncamera = "{camera}"\ndoor = "{door}"\n'
        f"cooldown_s = 6\nmax_attempts_per_minute = 600\n{liveness}"
        for door, camera, _coil, liveness in DOORS
    )
    sources = f"""
[[sources]]
id = "bus-1"
type = "modbus"
endpoint = "tcp://127.0.0.1:{modbus}"
interval_s = 1

[[sources.meters]]
id = "m1"
unit = 1
profile = "eastron_sdm120"
read = ["power_w"]
{"".join(parts)}
[faces]
k = 3
n = 5
{entrances}"""
    text = gateway_toml(tmp_path / "state", mqtt=mqtt, sources=sources)
    return text.replace("[outbox]", "[runtime]\nstatus_interval_s = 0.5\n\n[outbox]")


def decisions(collector: Collector, door: str) -> list[dict]:
    """Grants and denials (not `access_door_failed`: a control door's pulse that the test's stop
    cuts short, relay released as the doors contract says, is no decision)."""
    kinds = ("access_granted", "access_denied")
    return [
        m.payload for m in collector.data() if m.topic.endswith(tuple(f"/{door}-face/{k}" for k in kinds))
    ]


def granted(collector: Collector, door: str) -> int:
    return sum(d["kind"] == "access_granted" for d in decisions(collector, door))


@pytest.mark.timeout(900)
def test_animated_photos_and_slideshows_never_open_the_door(tmp_path: Path, broker: Mosquitto) -> None:
    clips = {kind: attack_clip(tmp_path / f"{kind}.avi", kind, present_s=5.0) for kind in KINDS}
    relay = SimulatedRelayModule(9)
    modbus = ModbusThread([SimulatedMeter(1, "eastron_sdm120"), relay]).start()
    config = tmp_path / "lintel.toml"
    config.write_text(config_text(tmp_path, broker.port, modbus.port, clips))
    enrolled = lintel_output(
        "faces", "enroll", "-c", str(config), "--resident", "r-0412", "--unit", "3-1202",
        "--consent", "signed form 118", str(photo("faces/obama.jpg")),
    )  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    gallery = Gallery(tmp_path / "state" / "faces.db", tmp_path / "state" / "faces.key")
    him = gallery.pseudonym("r-0412")  # what events call him (issue 27: never the resident id)
    gallery.close()
    check = lintel_output("check-config", "-c", str(config))
    assert "faces.liveness: off at animated_photo-control-face, slideshow-control-face" in " ".join(
        check.stderr.split()
    ), check.stderr
    collector = Collector(broker.port, topic="lintel/site-a/gw-test/#").start()
    proc = lintel("run", "-c", str(config))
    try:
        wait_status(config, lambda s: s["lanes"].get("face_access", {}).get("residents") == 1, timeout=60)
        # condition, not time: a loaded machine analyses fewer frames and takes longer
        assert collector.wait_for(
            lambda c: all(granted(c, f"{kind}-control") >= APPROACHES for kind in KINDS), 780
        ), {kind: granted(collector, f"{kind}-control") for kind in KINDS}
        status = wait_status(config, lambda s: True, 5)["lanes"]["face_access"]
    finally:
        stop_and_show_log(proc)
        collector.stop()
        modbus.stop()
    for kind in KINDS:
        guarded = decisions(collector, f"{kind}-guarded")
        summary = [(d["kind"], d["attrs"].get("reason"), d["attrs"].get("resident_id")) for d in guarded]
        assert not any(kind == "access_granted" for kind, _, _ in summary), summary
        # not for want of trying: recognised as the resident, refused by the default liveness (a
        # decision needs 5 frames of the face: on a loaded machine many approaches end before it)
        refused = [d for d in guarded if d["attrs"].get("reason") == "liveness_failed"]
        assert len(refused) >= 3, summary
        assert {d["attrs"]["resident_id"] for d in refused} == {him}
        assert all(d["attrs"]["liveness_check"] == "model" for d in guarded)
        control = decisions(collector, f"{kind}-control")
        assert all(d["attrs"]["liveness_check"] == "off" for d in control)
    by_id = {e["id"]: e for e in status["entrances"]}
    assert [by_id[f"{k}-guarded-face"]["granted"] for k in KINDS] == [0, 0]
    # the guarded doors' coils (0 and 2) never switched on; the control doors' (1 and 3) pulsed
    ons = {coil for _, coil, on in relay.switches if on}
    assert ons == {1, 3}, relay.switches
