"""Runtime pieces in-process: sd_notify over a real socket, supervision, polling cadence, pipeline."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.core import (
    Backoff,
    Event,
    PollingSource,
    Reading,
    Record,
    SourceContext,
    SourceUnavailable,
    SystemClock,
)
from gateway.runtime.daemon import Daemon
from gateway.runtime.pipeline import Pipeline
from gateway.runtime.sdnotify import Notifier
from gateway.runtime.supervisor import ComponentHealth, RestartPolicy, supervise
from tests.conftest import gateway_toml
from tests.support.broker import Mosquitto
from tests.support.notify import NotifySocket


def test_notifier_speaks_the_datagram_protocol(tmp_path: Path) -> None:
    sock = NotifySocket(tmp_path / "notify")
    n = Notifier(str(tmp_path / "notify"))
    assert n.ready("running") and n.watchdog() and n.stopping()
    got = sock.collect(0.3)
    assert got[0]["READY"] == "1" and got[0]["STATUS"] == "running" and got[0]["MAINPID"].isdigit()
    assert got[1] == {"WATCHDOG": "1"}
    assert got[2] == {"STOPPING": "1", "STATUS": "stopping"}
    sock.close()


def test_notifier_abstract_namespace_socket() -> None:
    name = f"lintel-test-{time.monotonic_ns()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(1)
    assert Notifier("@" + name).status("hello")
    assert server.recv(100) == b"STATUS=hello"
    server.close()


def test_notifier_without_systemd_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled and not n.ready("x") and not n.watchdog()


def test_notifier_survives_a_vanished_socket(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier(str(tmp_path / "gone"))
    assert not n.status("a") and not n.status("b")
    assert len([r for r in caplog.records if "cannot notify" in r.message]) == 1  # logged once


def test_backoff_full_jitter_bounds() -> None:
    b = Backoff(1.0, 8.0)
    ceilings = []
    for _ in range(6):
        ceilings.append(b.ceiling())
        assert 0 <= b.next_delay() <= ceilings[-1]
    assert ceilings == [1, 2, 4, 8, 8, 8]
    b.reset()
    assert b.ceiling() == 1


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def test_supervisor_retries_device_faults_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    calls = {"n": 0}
    health = ComponentHealth("source:m1")

    async def run() -> None:
        calls["n"] += 1
        if calls["n"] < 5:
            raise SourceUnavailable("no response from unit 7")
        health.progress()

    caplog.set_level(logging.INFO)
    asyncio.run(supervise(health, run, RestartPolicy(budget=1), sleep=_no_sleep))
    assert calls["n"] == 5 and health.state == "stopped"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 1, messages
    assert sum("is back" in m for m in messages) == 1, messages


def test_supervisor_gives_up_on_a_crashing_component_after_its_budget() -> None:
    calls = {"n": 0}
    health = ComponentHealth("source:buggy")

    async def run() -> None:
        calls["n"] += 1
        raise ZeroDivisionError("bug")

    asyncio.run(supervise(health, run, RestartPolicy(budget=3, window_s=60), sleep=_no_sleep))
    assert calls["n"] == 4 and health.state == "failed"
    assert health.last_error == "ZeroDivisionError: bug"


class Slow(PollingSource):
    def __init__(self) -> None:
        super().__init__(0.05)
        self.started: list[float] = []

    async def poll(self, ctx: SourceContext) -> Iterable[Record]:
        self.started.append(time.monotonic())
        if len(self.started) == 3:
            await asyncio.sleep(0.12)  # one slow poll
        return [ctx.reading("x_count", len(self.started))]


def test_polling_cadence_does_not_drift_and_skips_missed_polls() -> None:
    source = Slow()
    out: list[Record] = []
    ctx = SourceContext("s1", SystemClock(), lambda r: out.append(r) is None)

    async def main() -> None:
        task = asyncio.create_task(source.run(ctx))
        await asyncio.sleep(0.52)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    t0 = source.started[0]
    offsets = [(t - t0) / 0.05 for t in source.started]
    after_slow = offsets[3:]
    # Every poll after the slow one starts on the original 50 ms grid, not 120 ms later plus drift.
    assert all(abs(o - round(o)) < 0.4 for o in after_slow), offsets
    assert source.missed_polls >= 2
    assert len(out) == len(source.started)


class Doubler:
    name = "doubler"

    def process(self, record: Record) -> Iterable[Record]:
        if isinstance(record, Reading):
            return [
                record,
                Reading(record.source_id, record.point + "_x2", float(record.value) * 2, record.ts_ms),
            ]
        return [record]

    def tick(self, now_ms: int) -> Iterable[Record]:
        return [Event("proc", "tick", now_ms)]


class Broken:
    name = "broken"

    def process(self, record: Record) -> Iterable[Record]:
        raise RuntimeError("bug")

    def tick(self, now_ms: int) -> Iterable[Record]:
        raise RuntimeError("bug")


def test_pipeline_runs_processors_and_survives_a_broken_one() -> None:
    sunk: list[Record] = []
    p = Pipeline(lambda r: sunk.append(r) is None, [Broken(), Doubler()])
    p.submit(Reading("m1", "power_w", 2.0, 1))
    p.tick(5)
    assert [getattr(r, "point", getattr(r, "kind", "")) for r in sunk] == ["power_w", "power_w_x2", "tick"]
    assert p.processor_errors == {"broken": 2}


def watched_daemon(
    tmp_path: Path, source: str, interval_s: float, stall_after_s: float = 0.5, **config: Any
) -> tuple[Daemon, NotifySocket]:
    """A daemon with one simulated source, its systemd watchdog (0.2 s) on a real notify socket."""
    text = gateway_toml(
        tmp_path / "state",
        sources=f'[[sources]]\nid = "{source}"\ntype = "simulated"\ninterval_s = {interval_s}\n',
        runtime={"stall_after_s": stall_after_s, "status_interval_s": 0.1},
        **config,
    )
    loaded = parse_config(text.encode(), "t", tmp_path)
    sock = NotifySocket(tmp_path / "notify")
    return Daemon(loaded, notifier=Notifier(str(tmp_path / "notify"), watchdog_usec=200_000)), sock


def test_watchdog_is_withheld_while_a_component_is_stalled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drivers.simulated.source import SimulatedSource

    real_poll = SimulatedSource.poll
    hang = {"now": False}

    async def poll(self: SimulatedSource, ctx: SourceContext) -> Iterable[Record]:
        if hang["now"]:
            await asyncio.sleep(3600)  # a device read that never returns
        return await real_poll(self, ctx)

    monkeypatch.setattr(SimulatedSource, "poll", poll)
    daemon, sock = watched_daemon(tmp_path, "ok", 0.05)

    async def main() -> tuple[int, int, int]:
        runner = asyncio.create_task(daemon.run())
        await asyncio.sleep(1.0)
        healthy = sum(1 for m in sock.collect(0.05) if m.get("WATCHDOG") == "1")
        hang["now"] = True
        await asyncio.sleep(0.7)  # the stall is noticed after stall_after_s
        sock.collect(0.05)
        sock.messages.clear()
        await asyncio.sleep(1.0)
        stalled = sum(1 for m in sock.collect(0.05) if m.get("WATCHDOG") == "1")
        states = {c["name"]: c["state"] for c in daemon.status_body()["components"]}
        assert states["source:ok"] == "stalled", states
        hang["now"] = False
        daemon.request_stop()
        await asyncio.wait_for(runner, 15)
        stopping = sum(1 for m in sock.collect(0.05) if m.get("STOPPING") == "1")
        return healthy, stalled, stopping

    healthy, stalled, stopping = asyncio.run(main())
    sock.close()
    assert healthy >= 5
    assert stalled == 0
    assert stopping == 1


def test_a_hung_sparkplug_link_withholds_the_watchdog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: Mosquitto
) -> None:
    """The second MQTT link is a worker thread like the native uplink: if its loop stops turning
    (a hang inside paho or our session), the gateway must get restarted by systemd, not go on
    with a silent Sparkplug side."""
    from gateway.delivery.sparkplug_link import SparkplugLink

    real_pump = SparkplugLink.pump
    hang = threading.Event()
    release = threading.Event()

    def pump(self: SparkplugLink, client: Any, timeout: float) -> tuple[bool, str | None]:
        if hang.is_set():
            release.wait(30)  # a loop turn that does not come back
        return real_pump(self, client, timeout)

    monkeypatch.setattr(SparkplugLink, "pump", pump)
    daemon, sock = watched_daemon(
        tmp_path,
        "ok",
        0.05,
        stall_after_s=1,  # a link turns its loop once a second, and that is allowed on top
        mqtt=f'url = "mqtt://127.0.0.1:{broker.port}"',
        sections={"bridges": {"sparkplug": {"enabled": True}}},
    )

    def state_of(name: str) -> str | None:
        return {c["name"]: c["state"] for c in daemon.status_body()["components"]}.get(name)

    async def main() -> tuple[int, int]:
        runner = asyncio.create_task(daemon.run())
        while daemon.state != "running" or daemon.core.sparkplug.state != "online":
            await asyncio.sleep(0.05)
        sock.collect(0.5)
        healthy = sum(1 for m in sock.collect(0.5) if m.get("WATCHDOG") == "1")
        assert state_of("sparkplug") == "running"
        hang.set()
        while "sparkplug" not in daemon.health_watch.unhealthy():
            await asyncio.sleep(0.05)
        sock.collect(0.2)
        sock.messages.clear()
        stalled = sum(1 for m in sock.collect(0.8) if m.get("WATCHDOG") == "1")
        hang.clear()
        release.set()
        daemon.request_stop()
        await asyncio.wait_for(runner, 30)
        return healthy, stalled

    healthy, stalled = asyncio.run(asyncio.wait_for(main(), 60))
    sock.close()
    assert healthy >= 1
    assert stalled == 0


def test_a_source_polled_less_often_than_stall_after_s_is_not_a_stall(tmp_path: Path) -> None:
    """A water meter read every 5 minutes reports progress every 5 minutes. With the default
    stall_after_s (120 s) the watchdog must not take that silence for a hang: it would have systemd
    restart a healthy gateway over and over. Scaled down: polls every 2 s, stall_after_s 0.5 s."""
    daemon, sock = watched_daemon(tmp_path, "slow", 2.0)

    async def main() -> tuple[int, set[str]]:
        runner = asyncio.create_task(daemon.run())
        while daemon.state != "running" or daemon.core.pipeline.accepted < 1:
            await asyncio.sleep(0.02)
        sock.collect(0.05)
        sock.messages.clear()
        states: set[str] = set()
        deadline = time.monotonic() + 3.0  # more than one whole poll interval after the first poll
        while time.monotonic() < deadline:
            states |= {c["state"] for c in daemon.status_body()["components"] if c["name"] == "source:slow"}
            await asyncio.sleep(0.1)
        pets = sum(1 for m in sock.collect(0.05) if m.get("WATCHDOG") == "1")
        daemon.request_stop()
        await asyncio.wait_for(runner, 15)
        return pets, states

    pets, states = asyncio.run(main())
    sock.close()
    assert states == {"running"}
    assert pets >= 5  # petted every 0.1 s throughout (a withheld watchdog would give 0-2)


def test_stop_stages_run_in_order_within_their_shares_and_a_late_stage_still_runs(tmp_path: Path) -> None:
    from gateway.core import ManualClock
    from gateway.runtime.shutdown import MIN_STAGE_S, Stage, run_stages

    clock = ManualClock()
    sock = NotifySocket(tmp_path / "notify")
    limits: list[tuple[str, float]] = []

    def stage(name: str, takes_s: float) -> Any:
        async def run(limit: float) -> None:
            limits.append((name, limit))
            clock.advance(takes_s)  # the stage uses this much of the budget

        return run

    stages = [
        Stage("lanes", "lanes stopped", stage("lanes", 1.0), 0.3, of_total=True),
        Stage("sources", "sources stopped", stage("sources", 8.5), 0.2, of_total=True),
        Stage("commit", "committed", stage("commit", 0.5), 0.5),
        Stage("closing", "closed", stage("closing", 0.0), 1.0),
    ]
    asyncio.run(run_stages(stages, 10.0, clock, Notifier(str(tmp_path / "notify"))))
    assert [name for name, _ in limits] == ["lanes", "sources", "commit", "closing"]
    assert limits[0][1] == pytest.approx(3.0) and limits[1][1] == pytest.approx(2.0)
    # half of the 0.5 s left goes to the commit, which uses it all: the last stage still runs
    assert limits[2][1] == pytest.approx(0.25) and limits[3][1] == MIN_STAGE_S
    got = sock.collect(0.3)
    assert got[0] == {"STOPPING": "1", "STATUS": "stopping: lanes"}
    assert [g["STATUS"] for g in got[1:]] == ["stopping: sources", "stopping: commit", "stopping: closing"]
    sock.close()
