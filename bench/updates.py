"""Update/rollback cycles with kill -9 of the whole service at random steps.

    .venv/bin/python -m bench.updates [--cycles 30] [--probation-s 10] [--seed N]
                                      [--watchdog-s S --start-timeout-s S]

One gateway (releases built from this tree, stamped 1.0.<n>; a real broker; a Modbus meter read every
0.5 s) run by `tests/support/service.py`, the systemd stand-in (its docstring says what a real
systemd does differently); with --watchdog-s / --start-timeout-s it speaks sd_notify as the unit's
Type=notify, WatchdogSec= and TimeoutStartSec= ask (the probation then lasts at least 1.5 x the
watchdog interval), so the kills also land on a service whose pets systemd checks. Each cycle
stages the next release with `lintel update --deb` run from the committed release: good (half the
cycles), one that cannot reach the broker, or one that dies at start. At one random step the
service (or the updater) is killed with SIGKILL:
  install    the `lintel update` process, while it builds the release (then it is run again)
  switched   the service, just after the switch and before the restart
  start      the service, within 2 s of the restart (before READY, or as it connects)
  probation  the service, at a random moment of the probation
  outcome    the service, just after the outcome event reached the broker
  none       no kill
Checked each cycle: the outcome event arrives (`updated` for a good release, unless the kills used
up its starts; `update_rolled_back` for a broken one) within probation + 30 s of the last start, and
afterwards a good release runs. At the end: every accepted outbox seq reached the broker. Prints one
table (cycles by kind and kill step, outcomes, seconds to the outcome).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import print_table
from drivers.modbus.simulator import SimulatedMeter
from gateway.releases.install import install
from gateway.releases.store import ReleaseStore
from tests.conftest import gateway_toml
from tests.support import releases as rel
from tests.support.broker import Mosquitto
from tests.support.collector import Collector
from tests.support.configs import meter_bus_toml, mqtt_toml
from tests.support.modbus_thread import ModbusThread
from tests.support.outbox_db import accepted_seq
from tests.support.service import ServiceStandIn

BASE = "lintel/site-a/gw-test"
STEPS = ("install", "switched", "start", "probation", "outcome", "none")
KINDS = ("good", "good", "no_broker", "crash")


class Gateway:
    def __init__(
        self,
        work: Path,
        broker: Mosquitto,
        probation_s: float,
        watchdog_s: float | None,
        start_timeout_s: float | None,
    ) -> None:
        self.work = work
        self.root = work / "opt"
        self.state = work / "state"
        self.probation_s = probation_s
        # what the release must stay healthy for (gateway/releases/probation.py: 1.5 x WatchdogSec at least)
        self.needed_s = max(probation_s, 1.5 * watchdog_s if watchdog_s else 0.0)
        self.watchdog_s, self.start_timeout_s = watchdog_s, start_timeout_s
        store = ReleaseStore(self.root)
        install(store, rel.payload(work, "1.0.0"), source="bench", site_packages=rel.SITE_PACKAGES)
        store.switch("1.0.0")
        store.commit("1.0.0")
        self.store = store
        self.modbus = ModbusThread([SimulatedMeter(1, "eastron_sdm120")]).start()
        text = gateway_toml(
            self.state, mqtt=mqtt_toml(broker.port), sources=meter_bus_toml(self.modbus.port, interval_s=0.5)
        )
        self.config = work / "lintel.toml"
        extra = f"\n[update]\nprobation_s = {probation_s}\nkeep_releases = 3\n"
        self.config.write_text(text.replace("[outbox]", extra + "\n[outbox]", 1))
        self.collector = Collector(broker.port, topic=f"{BASE}/#").start()
        self.service = self.stand_in(work / "service.log").start()

    def stand_in(self, log: Path) -> ServiceStandIn:
        return ServiceStandIn(
            self.root, self.config, log, watchdog_s=self.watchdog_s, start_timeout_s=self.start_timeout_s
        )

    def outcomes(self) -> list[dict]:
        kinds = ("updated", "update_rolled_back")
        return [
            m.payload["attrs"] | {"kind": m.payload["kind"]}
            for m in self.collector.snapshot()
            if m.topic.startswith(f"{BASE}/event/gateway/") and m.payload["kind"] in kinds
        ]

    def update_command(self, deb: Path) -> list[str]:
        sha = hashlib.sha256(deb.read_bytes()).hexdigest()
        return [
            str(self.root / "committed/bin/lintel"), "update", "--deb", str(deb), "--sha256", sha,
            "-c", str(self.config), "--root", str(self.root), "--no-restart",
            "--site-packages", str(rel.SITE_PACKAGES),
        ]  # fmt: skip

    def wait(self, predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.1)
        return bool(predicate())


def cycle(gw: Gateway, version: str, kind: str, step: str, rng: random.Random) -> dict:
    deb = rel.deb(gw.work, version, None if kind == "good" else kind)
    if step == "install":
        proc = subprocess.Popen(gw.update_command(deb), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 1.0))
        proc.kill()
        proc.wait()
    done = subprocess.run(gw.update_command(deb), capture_output=True, text=True)
    if done.returncode != 0:
        return {
            "version": version,
            "kind": kind,
            "step": step,
            "outcome": f"not staged: {done.stderr.strip()}",
        }
    seen = len(gw.outcomes())
    if step == "switched":
        gw.service.kill9()
    else:
        gw.service.restart()
    if step == "start":
        time.sleep(rng.uniform(0.0, 2.0))
        gw.service.kill9()
    elif step == "probation":
        time.sleep(rng.uniform(2.0, gw.needed_s))
        gw.service.kill9()
    started = time.monotonic()
    # each kill may restart the clock of probation: allow max_boots full probations
    ok = gw.wait(lambda: len(gw.outcomes()) > seen, 3 * (gw.needed_s + 30))
    took = time.monotonic() - started
    outcome = gw.outcomes()[-1] if ok else {"kind": "NONE"}
    if step == "outcome":
        gw.service.kill9()
    running = gw.wait(lambda: gw.service.running_version() is not None, 30)
    return {
        "version": version,
        "kind": kind,
        "step": step,
        "outcome": outcome["kind"] if outcome.get("to_version", version) == version else "WRONG",
        "reason": outcome.get("reason"),
        "took_s": took,
        "running": gw.service.running_version() if running else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--probation-s", type=float, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--watchdog-s", type=float, default=None, help="WatchdogSec= of the stand-in")
    parser.add_argument("--start-timeout-s", type=float, default=None, help="TimeoutStartSec=")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory(prefix="lintel-bench-updates-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work).start()
        gw = Gateway(work, broker, args.probation_s, args.watchdog_s, args.start_timeout_s)
        good = {"1.0.0"}
        results = []
        try:
            gw.wait(lambda: gw.service.running_version() == "1.0.0", 30)
            for n in range(1, args.cycles + 1):
                kind, step = rng.choice(KINDS), rng.choice(STEPS)
                version = f"1.0.{n}"
                r = cycle(gw, version, kind, step, rng)
                if kind == "good":
                    good.add(version)
                r["runs_good"] = r.get("running") in good
                results.append(r)
                print(
                    f"cycle {n:2d}: {kind:<9} kill at {step:<9} -> {r['outcome']:<18} "
                    f"{r.get('took_s', 0):5.1f} s, running {r.get('running')}"
                    + (f" ({r['reason']})" if r.get("reason") else ""),
                    flush=True,
                )
            gw.service.stop()
            accepted = accepted_seq(gw.state / "outbox.db")
            # a last run of the committed release drains what the kills left in the outbox
            drain = gw.stand_in(work / "drain.log").start()
            gw.wait(lambda: set(range(1, accepted + 1)) <= gw.collector.seqs(), 60)
            drain.stop()
            missing = set(range(1, accepted + 1)) - gw.collector.seqs()
        finally:
            gw.service.stop()
            gw.collector.stop()
            gw.modbus.stop()
            broker.stop()
    expected = Counter()
    for r in results:
        want = "updated" if r["kind"] == "good" else "update_rolled_back"
        expected["as expected" if r["outcome"] == want else f"{r['kind']} -> {r['outcome']}"] += 1
    took = [r["took_s"] for r in results if "took_s" in r]
    n = len(results)

    def counts(key: str) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(Counter(r[key] for r in results).items()))

    running_good = f"{sum(r['runs_good'] for r in results)} of {n}"
    rows = [
        ("cycles", str(n), ""),
        ("sd_notify (WatchdogSec / TimeoutStartSec)", f"{args.watchdog_s} / {args.start_timeout_s}", ""),
        ("kinds", counts("kind"), ""),
        ("kill steps", counts("step"), ""),
        ("outcomes", ", ".join(f"{k} {v}" for k, v in sorted(expected.items())), "as expected"),
        ("a good release running after each cycle", running_good, f"{n} of {n}"),
        (
            "seconds from the last restart to the outcome",
            f"median {statistics.median(took):.1f}, max {max(took):.1f}" if took else "-",
            f"rollback <= probation + 30 ({gw.needed_s + 30:g})",
        ),
        ("accepted messages / never delivered", f"{accepted} / {len(missing)}", "0 never delivered"),
        ("bench process CPU s", f"{time.process_time() - cpu0:.1f}", ""),
    ]
    print_table("update/rollback cycles with kill -9 (bench/updates.py)", rows)


if __name__ == "__main__":
    main()
