"""1,000 gateways into 3 workers and the catch-up session: nothing lost, nothing twice, while a
worker is killed -9 and restarted and the broker restarts, in one run (real mosquitto with
persistence, real PostgreSQL). Each failure alone, and repeated runs: bench/fleet_failover.py."""

from __future__ import annotations

import pytest

from tests.support import fleet_failover

GATEWAYS = 1000


@pytest.mark.timeout(420)  # 14,000 messages through PostgreSQL: minutes on a loaded 2-core machine
def test_three_workers_lose_and_repeat_nothing_while_a_worker_is_killed_and_the_broker_restarts(
    tmp_path, fleet_dsn, fleet_broker
):
    # w2 is killed -9 in the first round (messages in flight to it) and comes back under its id;
    # then, in the second round, the broker restarts cleanly (with the workers' shared
    # subscription gone until they subscribe again: the catch-up session covers that gap)
    out = fleet_failover.run(
        fleet_dsn, fleet_broker, tmp_path, "worker_killed_and_broker_restarted", gateways=GATEWAYS
    )
    assert out.sent == GATEWAYS * 2 * (fleet_failover.METERS + fleet_failover.SENSORS + 1)
    # every seq the broker accepted is in the ledger exactly once (the primary key), and each
    # telemetry message's readings were written exactly once
    assert out.acked == out.sent
    assert out.ledger == out.sent
    assert out.readings == out.readings_sent
    assert out.duplicate_readings == 0
    assert out.one_birth == GATEWAYS
    # the restarted worker got its session back (and with it what was in flight to it)
    assert out.w2_session_back
    assert out.all_alive
