"""Signed commands: commands verified per second on one core, and the latency signing adds.

Runs the real router (`CommandRouter.from_config`) of a gateway with 20 operator keys and its state
store on disk (every accepted nonce is saved, as in the daemon), with handlers that return at once,
so the figures are the router's own cost: decode, signature (Ed25519 over RFC 8785 canonical JSON),
budget, schema, roles, replay guard. The same commands through a router without an Authority
(no signature checked) give the added latency. Refusal paths are timed too: what a flood of forged
or unsigned commands costs the gateway. Target: ≥ 500 verified commands/s on one core.

    python -m bench.commands [--commands 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, print_table
from gateway.commands.canonical import canonical_bytes
from gateway.commands.envelope import validate
from gateway.commands.ratelimit import SenderBudgets
from gateway.commands.replay import ReplayGuard
from gateway.commands.router import CommandContext, CommandRouter
from gateway.commands.signing import envelope, new_key, public_key_b64, sign
from gateway.config.commands import CommandsSection
from gateway.core import SystemClock
from gateway.storage.state import StateStore

KEYS = 20


async def _done(_args: dict[str, Any], _ctx: CommandContext) -> dict[str, Any]:
    return {}


HANDLERS = {"door_pulse": _done, "alarm_ack": _done, "ping": _done}


def _section(keys: list[Any]) -> CommandsSection:
    return CommandsSection.model_validate(
        {
            "allow": ["ping", "alarm_ack", "door_pulse"],
            "max_per_minute": 100_000,
            "operators": [
                {
                    "id": f"op-{i}",
                    "public_key": public_key_b64(k),
                    "allow": ["ping", "alarm_ack", "door_pulse"],
                    "doors": ["*"],
                }
                for i, k in enumerate(keys)
            ],
        }
    )


def _payloads(keys: list[Any], count: int, signed: bool = True) -> list[bytes]:
    out = []
    for i in range(count):
        if i % 2:
            pulse = {"door": f"door-{i % 7}", "pulse_s": 1.5}
            body = envelope("door_pulse", pulse, gateway_id="gw", site="s")
        else:
            body = envelope("alarm_ack", {"alarm_id": str(i)}, gateway_id="gw", site="s")
        k = i % len(keys)
        out.append(json.dumps(sign(body, keys[k], f"op-{k}") if signed else body).encode())
    return out


def _time(router: CommandRouter, payloads: list[bytes]) -> tuple[list[float], float, dict[str, int]]:
    """(latency of each command in s, cpu s in all, outcomes) for every payload in one event loop."""
    outcomes: dict[str, int] = {}
    latencies: list[float] = []

    async def run() -> None:
        for p in payloads:
            t0 = time.perf_counter()
            body = await router.handle(p)
            latencies.append(time.perf_counter() - t0)
            key = body["code"] if body and "code" in body else (body or {}).get("outcome", "dropped")
            outcomes[key] = outcomes.get(key, 0) + 1

    cpu0 = cpu_seconds()
    asyncio.run(run())
    return latencies, cpu_seconds() - cpu0, outcomes


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _per_op_us(fn: Callable[[], object], n: int) -> float:
    """CPU µs per call (process time: steadier than wall time on a shared machine)."""
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=5000)
    args = parser.parse_args()
    n = args.commands
    logging.getLogger("lintel.commands").setLevel(logging.ERROR)  # the refusal lines are counted below
    keys = [new_key() for _ in range(KEYS)]
    section = _section(keys)
    clock = SystemClock()
    tmp = Path(tempfile.mkdtemp(prefix="lintel-bench-commands-"))
    rows: list[tuple[str, str, str]] = []
    try:
        store = StateStore(tmp / "state.db")
        signed = CommandRouter.from_config(section, "gw", "s", HANDLERS, store, clock, lambda _b: None)
        payloads = _payloads(keys, n)
        lat, cpu, outcomes = _time(signed, payloads)
        assert outcomes == {"ok": n}, outcomes
        rows.append(("signed commands verified and run", f"{n / cpu:,.0f} /s per core", "≥ 500 /s"))
        rows.append(("  CPU per command", f"{cpu / n * 1e6:,.0f} µs", ""))
        spread = f"{_pct(lat, 0.5) * 1e3:.3f} / {_pct(lat, 0.99) * 1e3:.3f} ms"
        rows.append(("  latency p50 / p99", spread, ""))

        plain_store = StateStore(tmp / "plain.db")
        plain = CommandRouter(
            HANDLERS, set(section.allow), ReplayGuard(plain_store, 300, 30), clock, lambda _b: None, 100_000
        )
        plain_lat, plain_cpu, plain_out = _time(plain, _payloads(keys, n, signed=False))
        assert plain_out == {"ok": n}, plain_out
        rows.append(("the same, no signature checked", f"{n / plain_cpu:,.0f} /s per core", ""))
        rows.append(("  CPU per command", f"{plain_cpu / n * 1e6:,.0f} µs", ""))
        p50, p99 = _pct(plain_lat, 0.5), _pct(plain_lat, 0.99)
        rows.append(("  latency p50 / p99", f"{p50 * 1e3:.3f} / {p99 * 1e3:.3f} ms", ""))
        added_cpu = (cpu - plain_cpu) / n * 1e3
        added_p50 = (_pct(lat, 0.5) - p50) * 1e3
        rows.append(("added per command: CPU / p50", f"{added_cpu:.3f} / {added_p50:.3f} ms", "≪ MQTT RTT"))

        doc = json.loads(payloads[1])
        pub = signed.auth.operators["op-1"].key  # type: ignore[union-attr]
        sig = base64.b64decode(doc["sig"])
        canon = canonical_bytes(doc)
        verify_us = _per_op_us(lambda: pub.verify(sig, canon), 2000)
        canon_us = _per_op_us(lambda: canonical_bytes(doc), 5000)
        rows.append(("  of which Ed25519 verify", f"{verify_us:.0f} µs", ""))
        rows.append(("  of which canonical JSON", f"{canon_us:.0f} µs", ""))
        schema_us = _per_op_us(lambda: validate(doc), 2000)
        rows.append(("JSON Schema check (both paths)", f"{schema_us:.0f} µs", ""))

        # What floods cost: forged signatures (verified, refused) and unsigned junk (refused unverified).
        forged = []
        for p in _payloads(keys, n):
            d = json.loads(p)
            d["args"] = {"door": "garage"} if d["command"] == "door_pulse" else {"alarm_id": "1"}
            forged.append(json.dumps(d).encode())
        flood = CommandRouter.from_config(section, "gw", "s", HANDLERS, None, clock, lambda _b: None)
        flood.budgets = SenderBudgets(clock, 10**9)  # measure the checks, not the budget
        _lat, fcpu, fout = _time(flood, forged)
        assert fout == {"bad_signature": n}, fout
        rows.append(("forged commands refused", f"{n / fcpu:,.0f} /s per core", "bad_signature"))
        _lat, ucpu, uout = _time(flood, _payloads(keys, n, signed=False))
        assert uout == {"unsigned": n}, uout
        rows.append(("unsigned commands refused", f"{n / ucpu:,.0f} /s per core", "unsigned"))
        rows.append(("refusal counter keys after the floods", str(len(flood.refusals.counts)), "fixed set"))
        rows.append(("warning lines logged for them", str(flood.refusals.lines_logged), "1 per code"))
        store.close()
        plain_store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(f"Signed commands: {n} per run, {KEYS} operator keys, one core", rows)


if __name__ == "__main__":
    main()
