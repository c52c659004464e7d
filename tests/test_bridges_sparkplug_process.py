"""`lintel run` with the Sparkplug B bridge against real mosquitto and an independent Sparkplug host
(pysparkplug, in its own venv): every message decoded by code that is not ours."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import spb_venv
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.process import lintel, lintel_output, stop_and_show_log, wait_status
from tests.test_process import write_config

SOURCES = """
[[sources]]
id = "meter-1"
type = "simulated"
profile = "load"
points = 5
interval_s = 0.1

[[sources]]
id = "door-1"
type = "simulated"
profile = "door_sensor"
interval_s = 0.2
alarm_probability = 0.2
"""
# QoS 1 (the documented deviation): every accepted reading must reach the host, across kill -9 and a
# broker restart; the spec's QoS 0 is checked by test_qos_0_births_values_after_a_restart_...
SPARKPLUG = '\n[bridges.sparkplug]\nenabled = true\ngroup_id = "court"\nprimary_host_id = "scada"\nqos = 1\n'


class Host:
    """The pysparkplug host as a subprocess: its decoded messages as they arrive."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [str(spb_venv.python()), str(spb_venv.HOST), str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.messages: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait(lambda ms: any(m["type"] == "HOST_CONNECTED" for m in ms))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.messages.append(json.loads(line))
                self._cond.notify_all()

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self, pred: Callable[[list[dict[str, Any]]], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(json.dumps(m)[:300] for m in self.messages[-15:])
                    raise AssertionError(f"the host never saw it; last messages:\n{tail}")
                self._cond.wait(left)

    def of(self, verb: str) -> list[dict[str, Any]]:
        with self._cond:
            return [m for m in self.messages if m.get("type") == verb]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def host(broker: Mosquitto) -> Iterator[Host]:
    h = Host(broker.port)
    yield h
    h.close()


def link(status: dict[str, Any]) -> dict[str, Any]:
    return dict(status.get("sparkplug") or {})


def count(verb: str) -> Callable[[list[dict[str, Any]]], int]:
    return lambda ms: sum(1 for m in ms if m.get("type") == verb)


def check_sessions(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split what the host saw into sessions (from each NBIRTH); in each, seq runs 0, 1, 2, ...
    (mod 256) without a gap, and every data message was decoded (aliases resolved)."""
    sessions: list[list[dict[str, Any]]] = []
    for m in messages:
        if m.get("type") in ("HOST_CONNECTED", "REBIRTH_ASKED", "STATE", "NCMD", "DCMD", "NDEATH", None):
            continue
        if m["type"] == "NBIRTH":
            sessions.append([])
        if not sessions:
            continue  # data before the first birth we saw (there is none unless we connected late)
        sessions[-1].append(m)
    for s in sessions:
        assert [m.get("error") for m in s if m.get("error")] == []
        seqs = [m["seq"] for m in s]
        assert seqs == [i % 256 for i in range(len(seqs))], seqs[:40]
        born: set[str] = set()
        for m in s:
            device = m["topic"].split("/")[4] if m["topic"].count("/") == 4 else None
            if m["type"] == "DBIRTH":
                born.add(str(device))
            if m["type"] == "DDEATH":
                born.discard(str(device))
            if m["type"] == "DDATA":  # births before data, no data of a dead device
                assert device in born, m["topic"]
    return sessions


def seen_by_host(messages: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    return {
        (m["topic"].split("/")[4], x["name"] or "", x["ts"])
        for m in list(messages)
        if m.get("type") == "DDATA" and "metrics" in m
        for x in m["metrics"]
    }


def native_readings(collector: Collector) -> set[tuple[str, str, int]]:
    return {
        (msg.payload["source_id"], r["point"], r["ts_ms"])
        for msg in collector.data()
        if msg.payload.get("schema") == "lintel.telemetry/1"
        for r in msg.payload["readings"]
    }


def test_sparkplug_host_sees_births_data_rebirth_broker_restart_and_ndeath_on_kill_9(
    tmp_path: Path, broker: Mosquitto, host: Host, collector: Collector
) -> None:
    config = write_config(tmp_path, broker.url, sources=SOURCES)
    config.write_text(config.read_text() + SPARKPLUG)
    proc = lintel("run", "-c", str(config))
    try:
        # 1. The primary host is not online: nothing is born, data is held (the native flows).
        wait_status(config, lambda s: link(s).get("state") == "waiting for primary host")
        assert collector.wait_for(lambda c: len(c.seqs()) > 20, 30)
        assert host.of("NBIRTH") == [] and host.of("DDATA") == []  # nor by the native link
        assert link(wait_status(config, lambda s: link(s).get("connects") == 1))["sent"] == 0
        host.say("state scada online")
        host.wait(lambda ms: count("DDATA")(ms) >= 10)
        first = host.of("NBIRTH")[0]
        bd_seq = {m["name"]: m["value"] for m in first["metrics"]}["bdSeq"]
        assert {m["name"]: m["value"] for m in first["metrics"]}["Node Control/Rebirth"] is False
        historical = [m for m in host.of("DDATA") if any(x["historical"] for x in m["metrics"])]
        assert historical, "the data held while the host was offline never came"
        shown = lintel_output("status", "-c", str(config)).stdout
        assert f"sparkplug: online (bdSeq {bd_seq})" in shown, shown

        def spb_in_stats(c: Collector) -> bool:  # an operator reading only native stats sees the link
            stats = [m.payload for m in c.snapshot() if m.topic.endswith("/stats")]
            return any((b.get("sparkplug") or {}).get("state") == "online" for b in stats)

        assert collector.wait_for(spb_in_stats, 30)
        # 2. Rebirth on request: same bdSeq, seq from 0 again, then data.
        # A flood of requests costs at most two: one at once, the rest coalesced a second later
        # (30 DDATA take over 2 s at these sources' rates).
        before = len(host.of("NBIRTH"))
        for _ in range(10):
            host.say("rebirth court gw-test")
        host.wait(lambda ms: count("NBIRTH")(ms) > before)
        n = len(host.of("DDATA"))
        host.wait(lambda ms: count("DDATA")(ms) >= n + 30)
        assert 1 <= len(host.of("NBIRTH")) - before <= 2
        before = len(host.of("NBIRTH"))
        again = host.of("NBIRTH")[-1]
        assert {m["name"]: m["value"] for m in again["metrics"]}["bdSeq"] == bd_seq
        # 3. The broker restarts (it forgets STATE; the host says it again): a new session.
        broker.stop()
        broker.start()
        host.wait(lambda ms: count("NBIRTH")(ms) > before, 40)
        n = len(host.of("DDATA"))
        host.wait(lambda ms: count("DDATA")(ms) >= n + 5)
        last = host.of("NBIRTH")[-1]
        last_bd = {m["name"]: m["value"] for m in last["metrics"]}["bdSeq"]
        assert last_bd != bd_seq  # one more per CONNECT sent (attempts refused by a dead port reuse it)
        # 4. Malformed NCMDs and a DCMD are counted, never fatal; the session goes on.
        host.say("raw spBv1.0/court/NCMD/gw-test ffffffff0f")
        host.say("raw spBv1.0/court/NCMD/gw-test")
        host.say("raw spBv1.0/court/DCMD/gw-test/meter-1 0a00")
        n = len(host.of("DDATA"))
        host.wait(lambda ms: count("DDATA")(ms) >= n + 5)
        wait_status(config, lambda s: link(s).get("rejected", {}) == {"NCMD": 2, "DCMD": 1})
        # 5. kill -9: the broker publishes the will, NDEATH with the last NBIRTH's bdSeq.
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        host.wait(lambda ms: count("NDEATH")(ms) >= 1)
        assert host.of("NDEATH")[-1]["bd_seq"] == last_bd
        # 6. Restarted: a new session (bdSeq persisted, so not reused), and nothing accepted is lost
        # to Sparkplug: every reading the native schema delivered (same records, same commits)
        # reaches the host as a metric value with its own time, live or as history.
        births = len(host.of("NBIRTH"))
        proc = lintel("run", "-c", str(config))
        host.wait(lambda ms: count("NBIRTH")(ms) > births)
        restarted = {m["name"]: m["value"] for m in host.of("NBIRTH")[-1]["metrics"]}["bdSeq"]
        assert restarted not in (bd_seq, last_bd)
        # the native backlog of the killed run drains (1000 msg/s) well within a second of live data
        reborn_ms = host.of("NBIRTH")[-1]["timestamp"]
        assert collector.wait_for(lambda c: any(k[2] > reborn_ms + 1000 for k in native_readings(c)), 30)
        native = native_readings(collector)
        try:
            host.wait(lambda ms: native <= seen_by_host(ms), 30)
        except AssertionError:
            lost = sorted(native - seen_by_host(host.messages))
            raise AssertionError(f"{len(lost)} readings lost to Sparkplug, e.g. {lost[:10]}") from None
        stop_and_show_log(proc)
        host.wait(lambda ms: count("NDEATH")(ms) >= 2)  # a clean stop says NDEATH itself
        assert host.of("NDEATH")[-1]["bd_seq"] == restarted
    finally:
        if proc.poll() is None:
            stop_and_show_log(proc)
    sessions = check_sessions(host.messages)
    assert len(sessions) >= 4


GONE = """
[[sources]]
id = "meter-gone"
type = "simulated"
profile = "load"
points = 2
interval_s = 0.1
"""
SPARKPLUG_QOS_0 = '\n[bridges.sparkplug]\nenabled = true\ngroup_id = "court"\nprimary_host_id = "scada"\n'


def device_of(m: dict[str, Any]) -> str | None:
    parts = m["topic"].split("/")
    return parts[4] if len(parts) == 5 else None


def after(messages: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    return [m for m in messages[index:] if m.get("type") not in (None, "HOST_CONNECTED", "REBIRTH_ASKED")]


def test_qos_0_births_values_after_a_restart_and_no_birth_for_a_removed_device(
    tmp_path: Path, broker: Mosquitto, host: Host
) -> None:
    """Issue 28: births were QoS 1 mid-session, null after a restart (75 of 77 metrics), devices
    that left the config were still born, NDATA never came. Decoded by pysparkplug, not our code."""
    config = write_config(tmp_path, broker.url, sources=SOURCES + GONE)
    config.write_text(config.read_text() + SPARKPLUG_QOS_0)
    host.say("state scada online")
    proc = lintel("run", "-c", str(config))
    try:
        host.wait(
            lambda ms: (
                {"meter-1", "door-1", "meter-gone"} <= {device_of(m) for m in ms if m["type"] == "DDATA"}
            )
        )
        host.wait(lambda ms: count("NDATA")(ms) >= 2)  # the gateway's health, every stats (1 s)
        stop_and_show_log(proc)  # a clean stop: the values are kept for the next births
        host.wait(lambda ms: count("NDEATH")(ms) >= 1)
        first_run = list(host.messages)
        # The spec's QoS 0 for births and data (the will NDEATH is QoS 1, also the spec).
        qos = {
            (m["type"], m["qos"])
            for m in first_run
            if m["type"] in ("NBIRTH", "DBIRTH", "DDATA", "NDATA", "DDEATH")
        }
        assert {q for _t, q in qos} == {0}, qos
        assert {t for t, _q in qos} >= {"NBIRTH", "DBIRTH", "DDATA", "NDATA"}
        health = {x["name"]: x["value"] for m in first_run if m["type"] == "NDATA" for x in m["metrics"]}
        assert health["Health/uplink"] == "connected" and health["Health/uptime_s"] > 0
        assert {"Health/outbox_backlog", "Health/records_dropped", "Health/open_alarms"} <= set(health)
        last: dict[tuple[str, str], tuple[Any, int]] = {}  # the newest value the host saw per metric
        for m in first_run:
            if m["type"] in ("DDATA", "DBIRTH"):
                for x in m["metrics"]:
                    if not x["null"] and x["ts"] >= last.get((device_of(m), x["name"]), (None, -1))[1]:
                        last[(str(device_of(m)), x["name"])] = (x["value"], x["ts"])
        # meter-gone leaves the configuration; the gateway starts again.
        config.write_text(config.read_text().replace(GONE, ""))
        mark = len(host.messages)
        proc = lintel("run", "-c", str(config))
        host.wait(lambda ms: count("NBIRTH")(ms[mark:]) >= 1)
        host.wait(lambda ms: any(m["type"] == "DDEATH" and device_of(m) == "meter-gone" for m in ms[mark:]))
        host.wait(lambda ms: count("DDATA")(ms[mark:]) >= 5)
        stop_and_show_log(proc)
    finally:
        if proc.poll() is None:
            stop_and_show_log(proc)
    second = after(host.messages, mark)
    session = second[[m["type"] for m in second].index("NBIRTH") :]
    nbirth = session[0]
    assert all(m.get("error") is None for m in session), [m for m in session if m.get("error")][:3]
    born = {str(device_of(m)): m for m in session if m["type"] == "DBIRTH"}
    assert "meter-gone" not in born and {"meter-1", "door-1"} <= set(born)  # no birth for a removed device
    death = next(m for m in session if m["type"] == "DDEATH" and device_of(m) == "meter-gone")
    assert death["qos"] == 0
    # Births after the restart carry the last known values (not nulls), each with its own time:
    # exactly the last value the host saw, or a newer one measured since the restart.
    for device in ("meter-1", "door-1"):
        birth = born[device]
        assert birth["qos"] == 0 and birth["metrics"]
        for x in birth["metrics"]:
            assert not x["null"], (device, x)
            seen = last.get((device, x["name"]))
            assert seen is not None, (device, x["name"])
            assert x["ts"] >= seen[1], (device, x, seen)
            if x["ts"] == seen[1]:
                assert x["value"] == seen[0], (device, x, seen)
    nbirth_health = {x["name"]: x for x in nbirth["metrics"] if x["name"].startswith("Health/")}
    assert nbirth_health and not any(x["null"] for x in nbirth_health.values())
    assert all(m["qos"] == 0 for m in session if m["type"] in ("DBIRTH", "DDATA", "NDATA", "DDEATH"))
    check_sessions(host.messages)


def test_a_forged_future_dated_state_neither_ends_nor_stalls_the_session(
    tmp_path: Path, broker: Mosquitto, host: Host
) -> None:
    """Issue 27 item 4: a retained STATE {"online": false, "timestamp": 2^53-1} ended the session and
    made the real host's later STATE look older, so the node waited through the next session."""
    config = write_config(tmp_path, broker.url, sources=SOURCES)
    config.write_text(config.read_text() + SPARKPLUG_QOS_0)
    host.say("state scada online")
    proc = lintel("run", "-c", str(config))
    forged = json.dumps({"online": False, "timestamp": 2**53 - 1}).encode().hex()
    try:
        host.wait(lambda ms: count("DDATA")(ms) >= 5)
        births = count("NBIRTH")(host.messages)
        host.say(f"retained spBv1.0/STATE/scada {forged}")
        status = wait_status(config, lambda s: link(s).get("rejected", {}).get("STATE") == 1)
        assert link(status)["state"] == "online" and link(status)["host_offline"] == 0
        n = count("DDATA")(host.messages)
        host.wait(lambda ms: count("DDATA")(ms) >= n + 10)  # the session goes on
        assert count("NBIRTH")(host.messages) == births and count("NDEATH")(host.messages) == 0
        # An offline older than the session it would end (stamped before the online that began it)
        # is ignored too.
        stale = json.dumps({"online": False, "timestamp": 1_000}).encode().hex()
        host.say(f"raw spBv1.0/STATE/scada {stale}")
        n = count("DDATA")(host.messages)
        host.wait(lambda ms: count("DDATA")(ms) >= n + 10)
        assert count("NDEATH")(host.messages) == 0
        # kill -9 and restart while the broker's retained STATE is the forgery: the node knows the
        # host was online, ignores the forgery again, and is born without waiting for the host.
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        host.wait(lambda ms: count("NDEATH")(ms) >= 1)  # the will
        births = count("NBIRTH")(host.messages)
        proc = lintel("run", "-c", str(config))
        host.wait(lambda ms: count("NBIRTH")(ms) > births, 30)
        n = count("DDATA")(host.messages)
        host.wait(lambda ms: count("DDATA")(ms) >= n + 5)
        # The real host's later STATE is believed: offline ends the session (NDEATH), as the spec says.
        deaths = count("NDEATH")(host.messages)
        host.say("state scada offline")
        host.wait(lambda ms: count("NDEATH")(ms) > deaths)
    finally:
        if proc.poll() is None:
            stop_and_show_log(proc)
