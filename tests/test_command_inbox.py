"""The bounded inbox between the MQTT thread and the router (gateway/delivery/inbox.py): what is
dropped before parsing, and why, counted; small commands go first. Time is our ManualClock. The
flood against a real `lintel run` and mosquitto is in tests/test_command_flood_process.py."""

from __future__ import annotations

import asyncio
import threading

from gateway.core import ManualClock
from gateway.delivery.inbox import CommandInbox, InboxLimits

LIMITS = InboxLimits(
    max_bytes=300_000,
    small_bytes=16_384,
    small_capacity=4,
    large_capacity=2,
    large_bytes_per_s=600_000,
    large_burst_bytes=600_000,
)
SMALL, LARGE = b"s" * 400, b"L" * 299_000


def _inbox() -> tuple[CommandInbox, ManualClock]:
    clock = ManualClock()
    return CommandInbox(clock, LIMITS), clock


def _drain(inbox: CommandInbox) -> list[bytes]:
    out = []
    while (payload := inbox.take()) is not None:
        out.append(payload)
    return out


def test_oversize_is_dropped_unread_and_counted() -> None:
    inbox, _ = _inbox()
    assert inbox.offer(b"x" * 300_001) is False
    assert inbox.snapshot()["dropped_oversize"] == 1 and inbox.snapshot()["queued"] == 0


def test_small_commands_are_taken_before_queued_large_ones() -> None:
    inbox, _ = _inbox()
    assert inbox.offer(LARGE) and inbox.offer(LARGE)
    keyholder = b'{"command":"door_pulse"}'
    assert inbox.offer(keyholder)
    assert _drain(inbox) == [keyholder, LARGE, LARGE]


def test_large_messages_beyond_the_work_budget_are_dropped_before_parsing() -> None:
    inbox, clock = _inbox()
    # 100 messages/s of 299 kB for 10 s: only the burst plus 600 kB/s may pass.
    admitted = 0
    for _ in range(1000):
        if inbox.offer(LARGE):
            admitted += 1
        clock.advance(0.01)
        admitted_now = _drain(inbox)
        assert len(admitted_now) <= 2
    assert admitted <= (600_000 + 10 * 600_000) // 299_000 + 1
    snap = inbox.snapshot()
    assert snap["offered"] == 1000 and snap["dropped_over_budget"] == 1000 - admitted
    assert admitted >= 15  # the budget is spent, not starved: ~2 large messages a second


def test_full_lanes_drop_the_newest_and_count_it() -> None:
    inbox, _ = _inbox()
    for _ in range(6):
        inbox.offer(SMALL)
    for _ in range(3):
        inbox.offer(LARGE)
    snap = inbox.snapshot()
    assert snap["queued"] == 4 + 2
    assert snap["dropped_small_full"] == 2 and snap["dropped_large_full"] == 0
    assert snap["dropped_over_budget"] == 1  # the third large one is past the 600 kB burst


def test_get_wakes_the_loop_when_the_mqtt_thread_offers() -> None:
    inbox, _ = _inbox()

    async def main() -> bytes:
        inbox.bind(asyncio.get_running_loop())
        threading.Timer(0.05, inbox.offer, args=(SMALL,)).start()
        return await asyncio.wait_for(inbox.get(), 5)

    assert asyncio.run(main()) == SMALL
