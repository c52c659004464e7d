"""Staged updates with automatic rollback, across real processes: releases built from this tree
(stamped with other versions, some broken on purpose), a real broker, a Modbus meter feeding
readings, and `tests/support/service.py` standing in for systemd (its docstring says what a real
systemd does differently)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.modbus.simulator import SimulatedMeter
from gateway.commands.signing import new_key, public_key_b64, sign
from gateway.releases.install import install
from gateway.releases.probation import EXIT_ROLLBACK
from gateway.releases.state import COMMITTED, read_state
from gateway.releases.store import ReleaseStore
from gateway.releases.updater import REQUEST_FILE
from tests.conftest import gateway_toml
from tests.support import releases as rel
from tests.support.broker import Mosquitto
from tests.support.collector import Collector, Received
from tests.support.commander import Commander, envelope, operator_toml
from tests.support.configs import meter_bus_toml, mqtt_toml
from tests.support.modbus_thread import ModbusThread
from tests.support.outbox_db import accepted_seq
from tests.support.schema import validate
from tests.support.service import ServiceStandIn, UpdatePathStandIn

PROBATION_S = 10  # the smallest update.probation_s allowed
VIEWER_KEY = new_key()  # a second operator, without the update role
BASE = "lintel/site-a/gw-test"


@dataclass
class Site:
    tmp: Path
    root: Path
    config: Path
    state: Path
    service: ServiceStandIn
    collector: Collector
    broker: Mosquitto
    packages: Packages

    def events(self, kind: str) -> list[Received]:
        return [m for m in self.collector.snapshot() if m.topic == f"{BASE}/event/gateway/{kind}"]

    def births(self) -> list[Received]:
        return [m for m in self.collector.snapshot() if m.topic == f"{BASE}/birth"]

    def stage(self, version: str, breakage: str | None = None) -> None:
        """`lintel update --deb` as root would run it, from the committed release; then the restart."""
        deb = self.packages.deb(version, breakage)
        sha = hashlib.sha256(deb.read_bytes()).hexdigest()
        done = subprocess.run(
            [
                str(self.root / "committed/bin/lintel"), "update", "--deb", str(deb), "--sha256", sha,
                "-c", str(self.config), "--root", str(self.root), "--no-restart",
                "--site-packages", str(rel.SITE_PACKAGES),
            ],
            capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        self.service.restart()

    def wait(self, predicate: object, timeout: float, what: str) -> None:
        if not self.collector.wait_for(lambda _c: predicate(), timeout):  # type: ignore[operator]
            raise AssertionError(f"{what} not seen in {timeout} s; service log:\n" + self.log_tail())

    def log_tail(self) -> str:
        return "\n".join(self.service.log.read_text(errors="replace").splitlines()[-30:])


class Packages:
    """The test releases' .deb files, built once per module: `lintel update --deb` only reads the
    file it is given (it removes only packages it fetched itself), so tests can share them."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.built: dict[tuple[str, str | None], Path] = {}

    def deb(self, version: str, breakage: str | None = None) -> Path:
        key = (version, breakage)
        if key not in self.built:
            where = Path(tempfile.mkdtemp(dir=self.where, prefix="pkg-"))
            self.built[key] = rel.deb(where, version, breakage)
        return self.built[key]


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    return Packages(tmp_path_factory.mktemp("packages"))


@pytest.fixture
def site(
    request: pytest.FixtureRequest, tmp_path: Path, broker: Mosquitto, packages: Packages
) -> Iterator[Site]:
    """1.0.0 running under the systemd stand-in; `indirect` parameters go to ServiceStandIn, but
    `max_boots` to `[update]` (3, the default, unless a test needs fewer starts to prove its point)."""
    root = tmp_path / "opt"
    store = ReleaseStore(root)
    install(store, rel.payload(tmp_path, "1.0.0"), source="test", site_packages=rel.SITE_PACKAGES)
    store.switch("1.0.0")
    store.commit("1.0.0")
    meter = SimulatedMeter(1, "eastron_sdm120")
    modbus = ModbusThread([meter]).start()
    state = tmp_path / "state"
    commands = '\n[commands]\nallow = ["ping", "update"]\nclock_sync = "assume"\n' + operator_toml(
        ["ping", "update"]
    )
    viewer = public_key_b64(VIEWER_KEY)
    commands += f'[[commands.operators]]\nid = "viewer"\npublic_key = "{viewer}"\nallow = ["ping"]\n'

    param = dict(getattr(request, "param", {}))
    max_boots = param.pop("max_boots", 3)
    extra = f"\n[update]\nprobation_s = {PROBATION_S}\nmax_boots = {max_boots}\n"
    extra += 'allowed_urls = ["http://127.0.0.1/"]\n'
    text = gateway_toml(
        state, mqtt=mqtt_toml(broker.port), sources=meter_bus_toml(modbus.port, interval_s=0.5)
    )
    config = tmp_path / "lintel.toml"
    config.write_text(text.replace("[outbox]", extra + commands + "\n[outbox]", 1))
    collector = Collector(broker.port, topic=f"{BASE}/#").start()
    service = ServiceStandIn(root, config, tmp_path / "service.log", **param).start()
    s = Site(tmp_path, root, config, state, service, collector, broker, packages)
    try:
        s.wait(
            lambda: any(b.payload["release"]["version"] == "1.0.0" for b in s.births()), 30, "birth of 1.0.0"
        )
        yield s
    finally:
        service.stop()
        collector.stop()
        modbus.stop()


def outbox_format(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_a_release_that_dies_at_start_is_rolled_back_after_max_boots_and_says_why(site: Site) -> None:
    """A release that raises before READY: the boot guard counts its starts and switches back after
    max_boots (3); the births, `lintel status` and upstream say why, and nothing accepted is lost.
    (A release that starts but cannot reach the broker: the format test below.)"""
    site.stage("2.0.0", "crash")
    site.wait(lambda: site.events("update_rolled_back"), 30, "update_rolled_back (2.0.0)")
    rolled = site.events("update_rolled_back")[0].payload
    assert rolled["attrs"]["to_version"] == "2.0.0" and rolled["attrs"]["from_version"] == "1.0.0"
    assert "started 3 times without passing probation" in rolled["attrs"]["reason"]
    assert [r.version for r in site.service.runs] == ["1.0.0"] + ["2.0.0"] * 3 + ["1.0.0"]
    site.wait(lambda: site.service.running_version() == "1.0.0", 10, "1.0.0 running again")

    # the birth of the release running after the rollback names the one before it
    site.wait(
        lambda: any(b.payload["release"]["previous_version"] == "2.0.0" for b in site.births()), 20, "birth"
    )

    def status_says_rolled_back() -> bool:
        status = [str(site.root / "current/bin/lintel"), "status", "-c", str(site.config)]
        out = subprocess.run(status, capture_output=True, text=True).stdout
        return "update 1.0.0 -> 2.0.0 rolled back: release 2.0.0 started 3 times" in " ".join(out.split())

    site.wait(status_says_rolled_back, 20, "lintel status showing the rollback")
    for message in site.collector.snapshot():
        validate(message.topic, message.payload)
    # nothing accepted was lost on the way: every seq up to the last one reached the broker
    site.wait(lambda: len(site.collector.seqs()) > 20, 30, "more than 20 messages")
    site.service.stop()
    accepted = accepted_seq(site.state / "outbox.db")
    assert accepted > 20
    missing = set(range(1, accepted + 1)) - site.collector.seqs()
    assert not missing, f"{len(missing)} of {accepted} accepted messages never reached the broker"


def test_a_remote_update_must_be_signed_by_a_key_with_the_update_role_and_fresh(site: Site) -> None:
    commander = Commander(site.broker.port)
    try:
        body = envelope("update", {"version": "2.0.0"})
        commander.send(body, signed=False)
        assert commander.result_for(body["id"])["code"] == "unsigned"
        wrong_role = envelope("update", {"version": "2.0.0"})
        commander.send_raw(json.dumps(sign(wrong_role, VIEWER_KEY, "viewer")).encode())
        refused = commander.result_for(wrong_role["id"])
        assert refused["code"] == "not_allowed" and "may not issue update" in refused["reason"], refused
        replay = envelope("update", {"url": "http://127.0.0.1/x.deb", "sha256": "a" * 64})
        first = commander.call(replay)
        assert first["outcome"] == "ok", first
        request = site.state / REQUEST_FILE
        assert request.is_file()
        commander.send(replay)  # the same signed envelope again (same nonce)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and commander.count() < 4:
            time.sleep(0.05)
        again = [r for r in commander.results if r.get("correlation_id") == replay["id"]]
        assert [r["outcome"] for r in again] == ["ok", "rejected"]
        assert again[1]["code"] == "replayed", again[1]
        # the root runner (lintel-update.service) takes the request; the URL's prefix is allowed
        # but nothing answers there: the update fails, nothing was switched, and upstream hears why
        done = subprocess.run(
            [str(site.root / "committed/bin/lintel"), "update", "--request", "-c", str(site.config),
             "--root", str(site.root), "--no-restart"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 1 and "cannot fetch" in done.stderr, done.stderr
        assert not request.exists()
        # the running release sees the recorded failure and reports it, without a restart
        site.wait(lambda: site.events("update_failed"), 20, "update_failed")
        failed = site.events("update_failed")[0].payload["attrs"]
        assert failed["command_id"] == replay["id"] and failed["origin"] == "warden-2"
        assert ReleaseStore(site.root).current() == "1.0.0"
        assert [r.version for r in site.service.runs] == ["1.0.0"]
    finally:
        commander.close()


def test_kill_9_at_start_and_in_probation_still_ends_on_a_release_that_runs(site: Site) -> None:
    """The whole service killed twice while the new release starts and runs its probation: each kill
    is a start the guard counts; the third start passes and commits. (bench/updates.py: 30 cycles,
    random steps, broken releases too.)"""
    site.stage("2.0.0")
    site.wait(lambda: site.service.running_version() == "2.0.0", 30, "2.0.0 started")
    site.service.kill9()  # as it starts
    site.wait(
        lambda: len(site.service.runs) >= 3 and site.service.running_version() == "2.0.0", 20, "restart"
    )
    time.sleep(PROBATION_S / 2)
    site.service.kill9()  # halfway through its probation
    site.wait(lambda: site.events("updated"), PROBATION_S + 30, "updated after two kills")
    updated = site.events("updated")[0].payload["attrs"]
    assert updated["to_version"] == "2.0.0" and updated["boots"] == 3
    assert [r.version for r in site.service.runs] == ["1.0.0", "2.0.0", "2.0.0", "2.0.0"]
    assert [r.rc for r in site.service.runs[1:3]] == [-9, -9]
    site.service.stop()
    accepted = accepted_seq(site.state / "outbox.db")
    drain = ServiceStandIn(site.root, site.config, site.tmp / "drain.log").start()
    try:
        site.wait(lambda: set(range(1, accepted + 1)) <= site.collector.seqs(), 30, "every accepted seq")
    finally:
        drain.stop()


def test_a_new_outbox_format_waits_for_probation_so_a_rollback_finds_data_the_old_release_reads(
    site: Site,
) -> None:
    """Issue 29, data formats, with the two probation outcomes of a release that starts: releases
    that bump the outbox to format 4 (tests/support/releases.py `outbox_v4`).
    - 2.0.0 cannot reach the broker: rolled back after its probation, saying why; it leaves the file
      in format 3 and 1.0.0 runs on it again.
    - 3.0.0 is good: committed after probation, `updated` and its birth name both versions; it
      migrates at its first start after the commit, and that start moves the `committed` link.
    - 1.0.0 staged again over format 4 refuses it, asks for a rollback and says why, without
      touching the file. Nothing accepted is lost across the switches."""
    db = site.state / "outbox.db"
    assert outbox_format(db) == 3
    site.stage("2.0.0", "outbox_v4+no_broker")
    staged = time.monotonic()
    site.wait(lambda: site.service.running_version() == "2.0.0", 30, "2.0.0 started")
    site.wait(lambda: site.events("update_rolled_back"), PROBATION_S + 30, "update_rolled_back (2.0.0)")
    took = time.monotonic() - staged
    first = site.events("update_rolled_back")[0].payload
    assert first["attrs"]["to_version"] == "2.0.0" and first["attrs"]["from_version"] == "1.0.0"
    assert "not connected to the broker" in first["attrs"]["reason"], first
    assert PROBATION_S <= took <= PROBATION_S + 30
    site.wait(lambda: site.service.running_version() == "1.0.0", 20, "1.0.0 running again")
    assert outbox_format(db) == 3, "the release on probation migrated the outbox in place"
    assert [r.version for r in site.service.runs] == ["1.0.0", "2.0.0", "1.0.0"]
    assert site.service.runs[1].rc == EXIT_ROLLBACK  # asked for the rollback, exited for systemd to restart

    site.stage("3.0.0", "outbox_v4")
    site.wait(lambda: site.events("updated"), PROBATION_S + 30, "updated (3.0.0)")
    updated = site.events("updated")[0].payload
    assert updated["attrs"]["from_version"] == "1.0.0" and updated["attrs"]["to_version"] == "3.0.0"
    assert updated["attrs"]["origin"] == "local"
    state = read_state(site.state)
    assert state is not None and state.phase == COMMITTED and state.reported
    birth = [b for b in site.births() if b.payload["release"]["version"] == "3.0.0"][-1].payload
    assert birth["release"]["previous_version"] == "1.0.0"
    assert birth["versions"]["lintel"] == "3.0.0"
    assert outbox_format(db) == 3  # committed, still running on format 3 until its next start
    assert ReleaseStore(site.root).committed() == "1.0.0"
    # the next start migrates, and moves the `committed` link (its guard is the one that passed)
    site.service.restart()
    site.wait(
        lambda: len(site.service.runs) >= 5 and site.service.running_version() == "3.0.0", 20, "restart"
    )
    site.wait(lambda: outbox_format(db) == 4, 20, "the outbox migrated to format 4 after the commit")
    site.wait(lambda: ReleaseStore(site.root).committed() == "3.0.0", 20, "committed link on 3.0.0")
    assert len(site.events("update_rolled_back")) == 1

    site.stage("1.0.0")  # installed already: staged on probation over a format-4 outbox
    site.wait(lambda: len(site.events("update_rolled_back")) >= 2, 30, "update_rolled_back (1.0.0)")
    refused = site.events("update_rolled_back")[1].payload["attrs"]
    assert refused["to_version"] == "1.0.0" and refused["from_version"] == "3.0.0"
    assert "outbox format 4, written by a newer Lintel" in refused["reason"], refused
    assert [r.rc for r in site.service.runs if r.version == "1.0.0"][-1] == EXIT_ROLLBACK
    assert outbox_format(db) == 4
    site.wait(lambda: site.service.running_version() == "3.0.0", 20, "3.0.0 running again")
    for message in site.collector.snapshot():
        validate(message.topic, message.payload)
    # nothing accepted was lost across the three switches
    site.service.stop()
    accepted = accepted_seq(db)
    drain = ServiceStandIn(site.root, site.config, site.tmp / "drain.log").start()
    try:
        site.wait(lambda: set(range(1, accepted + 1)) <= site.collector.seqs(), 30, "every accepted seq")
    finally:
        drain.stop()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def apt_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The operator's apt repository (tests/support/releases.py `apt_repository`) on loopback HTTP."""
    served = tmp_path / "www"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", served
    server.shutdown()
    server.server_close()


def test_a_signed_remote_update_goes_through_the_path_unit_and_the_runner_to_updated(
    site: Site, apt_server: tuple[str, Path]
) -> None:
    """Issue 29, the success path of a remote update: a signed `update` command for a version ->
    the daemon queues the request -> the path unit starts the runner (the unit's own ExecStart, from
    the committed release) -> apt fetches the package from the operator's signed repository ->
    installed beside, switched on probation, restarted -> probation passes -> `updated` upstream,
    naming the command and the key that asked."""
    base, served = apt_server
    keyring, _ = rel.apt_repository(served, [site.packages.deb("2.0.0")], site.tmp / "gnupg")
    apt = [f"--apt-option={o.removeprefix('-o')}" for o in rel.apt_options(site.tmp / "apt", base, keyring)]
    extra = ["--root", str(site.root), "--site-packages", str(rel.SITE_PACKAGES), *apt]
    path_unit = UpdatePathStandIn(site.root, site.config, site.state, site.service, extra).start()
    assert path_unit.argv()[:4] == [str(site.root / "committed/bin/lintel"), "update", "--request", "-c"]
    commander = Commander(site.broker.port)
    try:
        body = envelope("update", {"version": "2.0.0"})
        answer = commander.call(body)
        assert answer["outcome"] == "ok" and answer["result"]["requested"] is True, answer
        site.wait(lambda: site.events("updated"), PROBATION_S + 60, "updated (2.0.0)")
    finally:
        commander.close()
        path_unit.stop()
    updated = site.events("updated")[0].payload["attrs"]
    assert (updated["from_version"], updated["to_version"]) == ("1.0.0", "2.0.0")
    assert updated["command_id"] == body["id"] and updated["origin"] == "warden-2"
    assert len(path_unit.runs) == 1 and path_unit.runs[0].returncode == 0, path_unit.runs
    assert not (site.state / REQUEST_FILE).exists()
    assert [r.version for r in site.service.runs] == ["1.0.0", "2.0.0"]
    assert ReleaseStore(site.root).current() == "2.0.0"
    assert not list((site.state / "updates").glob("*.deb"))  # the fetched package is not kept
    birth = [b for b in site.births() if b.payload["release"]["version"] == "2.0.0"][-1].payload
    assert birth["release"]["previous_version"] == "1.0.0"
    for message in site.collector.snapshot():
        validate(message.topic, message.payload)


WATCHDOG_S = 12.0  # the unit's WatchdogSec=60s, shortened (the daemon pets every WATCHDOG_S / 2)


@pytest.mark.parametrize(
    "site", [{"watchdog_s": WATCHDOG_S, "start_timeout_s": 60.0, "max_boots": 2}], indirect=True
)
def test_a_release_that_never_feeds_the_watchdog_is_killed_and_rolled_back_not_committed(site: Site) -> None:
    """Issue 29, what systemd's watchdog adds (tests/support/service.py speaks sd_notify). 2.0.0
    sends READY but never WATCHDOG=1; its own probation sees nothing wrong (every component makes
    progress). Each start is killed with SIGABRT after WatchdogSec and restarted; the guard counts
    the starts and rolls back (max_boots = 2 here: two watchdog kills show they are counted, a
    third would only add 15 s). With WatchdogSec (12 s) above probation_s (10 s) it would have passed
    a 10 s probation and been committed, then killed every 12 s with nothing to roll back to:
    probation lasts 1.5 x WatchdogSec under a watchdog, and a good release commits after those 18 s.
    1.0.0 keeps the watchdog fed throughout."""
    site.stage("2.0.0", "no_watchdog")
    site.wait(lambda: site.events("update_rolled_back"), 2 * (WATCHDOG_S + 20) + 30, "update_rolled_back")
    assert not site.events("updated"), "a release systemd kept killing was committed"
    reason = site.events("update_rolled_back")[0].payload["attrs"]["reason"]
    assert "release 2.0.0 started 2 times without passing probation" in reason, reason
    trial = [r for r in site.service.runs if r.version == "2.0.0"]
    assert len(trial) == 2
    for run in trial:
        assert run.ready_at is not None and run.killed_by == "watchdog" and run.rc == -signal.SIGABRT, run
    site.wait(lambda: site.service.running_version() == "1.0.0", 20, "1.0.0 running again")
    first = site.service.runs[0]
    assert first.version == "1.0.0" and first.killed_by is None and first.rc == 0  # stopped by the update
    site.stage("3.0.0")
    restarted = time.monotonic()
    site.wait(lambda: site.events("updated"), 1.5 * WATCHDOG_S + 30, "updated (3.0.0)")
    assert time.monotonic() - restarted >= 1.5 * WATCHDOG_S
    assert site.events("updated")[0].payload["attrs"]["to_version"] == "3.0.0"
    assert all(r.killed_by is None for r in site.service.runs if r.version != "2.0.0")


@pytest.mark.parametrize("site", [{"start_timeout_s": 5.0, "max_boots": 2}], indirect=True)
def test_a_release_that_never_says_ready_is_stopped_at_the_start_timeout_and_rolled_back(site: Site) -> None:
    """TimeoutStartSec (5 s here): 2.0.0 runs but never sends READY=1. Each start is stopped
    (SIGTERM: it stops cleanly, exit 0, still a failed start for systemd) and restarted; the guard
    rolls back after max_boots (2 here), before the 10 s probation could ever end."""
    site.stage("2.0.0", "no_ready")
    site.wait(lambda: site.events("update_rolled_back"), 2 * (5 + 20) + 30, "update_rolled_back")
    assert not site.events("updated")
    trial = [r for r in site.service.runs if r.version == "2.0.0"]
    assert [(r.killed_by, r.ready_at) for r in trial] == [("start_timeout", None)] * 2, trial
    reason = site.events("update_rolled_back")[0].payload["attrs"]["reason"]
    assert "release 2.0.0 started 2 times without passing probation" in reason, reason
    site.wait(lambda: site.service.running_version() == "1.0.0", 20, "1.0.0 running again")
