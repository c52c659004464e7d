"""How fast gateways get back to a broker that returns, and how a fleet spreads its reconnects.

Default: a simulation of `--gateways` gateways (200) using the uplink's own `ReconnectPolicy`, each
with its own random generator: the broker goes away for `--outage-s` and every gateway notices at
the same instant (the worst case for a thundering herd); the table gives the delay from the broker's
return to each gateway's first attempt, and the busiest second and 100 ms at the broker. The old
defaults (ceiling 120 s) are printed beside the new ones (5 s). A second table simulates a broker
restarting every `--period-s` for 10 minutes: in how many up-windows each gateway got connected.

`--real` then runs the same two scenarios against a real mosquitto with one in-process uplink, at
the config's default reconnect settings (slow: `--real-minutes` of flapping plus `--outage-s`):

    .venv/bin/python bench/reconnect.py [--gateways 200] [--outage-s 600] [--real]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Broker, print_table
from gateway.core import ManualClock, SystemClock
from gateway.delivery import Uplink, UplinkSettings
from gateway.delivery.links import Links
from gateway.delivery.reconnect import ReconnectPolicy
from gateway.storage.outbox import OutboxLimits, OutboxStore, OutboxWriter
from gateway.upstream.encode import Encoder, Topics

CONNECT_REFUSED_S = 0.002  # a refused TCP connect on a LAN
CONNECT_OK_S = 0.02  # TCP + CONNACK


def _policy(max_s: float, seed: int, clock: ManualClock) -> ReconnectPolicy:
    return ReconnectPolicy(1.0, max_s, 30.0, clock, random.Random(seed))


def _at(clock: ManualClock, t: float) -> None:
    """Set the policy's clock to simulated time t (ManualClock starts at monotonic 1000)."""
    clock.advance(1000.0 + t - clock.monotonic())


def simulate_outage(n: int, outage_s: float, max_s: float) -> list[float]:
    """Per gateway: seconds from the broker's return to its connection."""
    delays = []
    for g in range(n):
        clock = ManualClock()
        policy = _policy(max_s, g, clock)
        policy.connected()
        clock.advance(3600)  # a long, stable connection before the outage
        t = 0.0  # the broker went away; every gateway notices now
        while True:
            t += policy.next_delay()
            if t >= outage_s:
                delays.append(t - outage_s + CONNECT_OK_S)
                break
            t += CONNECT_REFUSED_S
    return delays


def simulate_flapping(n: int, period_s: float, down_s: float, minutes: float, max_s: float) -> list[int]:
    """Per gateway: up-windows in which it did not get connected."""
    windows = int(minutes * 60 / period_s)
    missed = []
    for g in range(n):
        clock = ManualClock()
        policy = _policy(max_s, g, clock)
        t, lost = 0.0, 0
        for w in range(windows):
            up_from, up_to = w * period_s + down_s, (w + 1) * period_s
            while t < up_from:  # attempts while the broker is down fail at once
                t += CONNECT_REFUSED_S + policy.next_delay()
            if t < up_to:
                _at(clock, t + CONNECT_OK_S)
                policy.connected()
                _at(clock, up_to)  # connected until the broker goes down
                t = up_to + policy.next_delay()
            else:
                lost += 1
        missed.append(lost)
    return missed


def _spread(delays: list[float]) -> list[str]:
    ordered = sorted(delays)

    def busiest(width: float) -> int:
        best, j = 0, 0
        for i, d in enumerate(ordered):
            while ordered[j] < d - width:
                j += 1
            best = max(best, i - j + 1)
        return best

    q = statistics.quantiles(ordered, n=100)
    return [
        f"{ordered[0]:.2f} s",
        f"{q[49]:.2f} s",
        f"{q[89]:.2f} s",
        f"{ordered[-1]:.2f} s",
        f"{busiest(1.0)}",
        f"{busiest(0.1)}",
    ]


def real_runs(minutes: float, period_s: float, down_s: float, outage_s: float) -> list[tuple[str, str, str]]:
    broker = Broker(start=False)
    tmp = Path(tempfile.mkdtemp(prefix="lintel-bench-reconnect-db-"))
    encoder = Encoder(Topics("lintel", "bench", "gw"))
    writer = OutboxWriter(OutboxStore(tmp / "o.db"), encoder, SystemClock(), OutboxLimits())
    defaults = UplinkSettings("127.0.0.1", broker.port, False)  # the config's reconnect defaults
    uplink = Links(Uplink(defaults, writer, encoder, SystemClock(), lambda: {})).uplink
    try:
        broker.start()
        writer.start()
        uplink.start()
        windows = int(minutes * 60 / period_s)
        connected_in, lags = 0, []
        for _ in range(windows):
            before, up_at = uplink.connects, time.monotonic()
            end = up_at + period_s - down_s
            while time.monotonic() < end and uplink.connects == before:
                time.sleep(0.01)
            if uplink.connects > before:
                connected_in += 1
                lags.append(time.monotonic() - up_at)
            time.sleep(max(0.0, end - time.monotonic()))
            broker.kill()
            time.sleep(down_s)
            broker.start()
        broker.kill()
        time.sleep(outage_s)
        before, back = uplink.connects, time.monotonic()
        broker.start()
        while uplink.connects == before and time.monotonic() - back < 300:
            time.sleep(0.01)
        outage_lag = time.monotonic() - back
    finally:
        uplink.stop(2)
        writer.stop()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return [
        (
            f"broker restarted every {period_s:g} s ({down_s:g} s down) for {minutes:g} min",
            f"connected in {connected_in} of {windows} up-windows",
            f"all {windows}",
        ),
        (
            "  time to connect in each up-window",
            f"median {statistics.median(lags):.2f} s, max {max(lags):.2f} s" if lags else "-",
            f"<= {defaults.reconnect_max_s:g} s",
        ),
        (f"after a {outage_s:g} s outage: reconnected in", f"{outage_lag:.2f} s", "<= 10 s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gateways", type=int, default=200)
    parser.add_argument("--outage-s", type=float, default=600.0)
    parser.add_argument("--period-s", type=float, default=30.0)
    parser.add_argument("--down-s", type=float, default=5.0)
    parser.add_argument("--real", action="store_true", help="also run against a real mosquitto (slow)")
    parser.add_argument("--real-minutes", type=float, default=10.0)
    args = parser.parse_args()
    n = args.gateways
    rows = []
    for label, max_s in (
        ("new defaults (1 s doubling to 5 s)", 5.0),
        ("old defaults (1 s doubling to 120 s)", 120.0),
    ):
        d = _spread(simulate_outage(n, args.outage_s, max_s))
        rows.append((label, "reconnect delay min / p50 / p90 / max", " / ".join(d[:4])))
        rows.append(("", "busiest second / 100 ms at the broker", f"{d[4]} / {d[5]} connects"))
    print_table(
        f"bench/reconnect: {n} simulated gateways lose the broker together; it is back after "
        f"{args.outage_s:g} s (full jitter)",
        rows,
    )
    windows = int(10 * 60 / args.period_s)
    flap = []
    for label, max_s in (("new defaults (max 5 s)", 5.0), ("old defaults (max 120 s)", 120.0)):
        missed = simulate_flapping(n, args.period_s, args.down_s, 10, max_s)
        flap.append(
            (label, "gateways connected in every up-window", f"{sum(1 for m in missed if m == 0)} of {n}")
        )
        flap.append(
            ("", "up-windows missed (worst gateway)", f"{sum(missed)} of {n * windows} ({max(missed)})")
        )
    print_table(
        f"bench/reconnect: broker restarting every {args.period_s:g} s ({args.down_s:g} s down) for 10 min, "
        f"{n} simulated gateways",
        flap,
    )
    if args.real:
        print_table(
            "bench/reconnect --real: one uplink at the config's defaults, real mosquitto",
            real_runs(args.real_minutes, args.period_s, args.down_s, args.outage_s),
        )


if __name__ == "__main__":
    main()
