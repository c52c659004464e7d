"""Poll cost, old vs new, interleaved: CPU per value and idle CPU of `lintel run` on one workload.

The workload (issue 32): 10 meters x 8 points (CHINT DDSU666 profile, two merged reads a poll) on one
Modbus TCP endpoint, a real mosquitto, and a counting subscriber that checks every value. Each round
runs the *old* gateway (a git ref, 308c926 by default, unpacked with `git archive`) and the *new*
one (this checkout) back to back on the same workload, so machine noise hits both; the figures are
the paired ratios new/old per round and their median.

- `--period 1`: each meter polled every second (a gateway's normal life): CPU per value and CPU %
  of one core ("idle" cost).
- `--flat`: polled as fast as the bus answers (interval 1 ms): values/s and CPU per value; the new
  gateway with `max_inflight` (default 4) requests to different unit ids in flight together.

CPU is the gateway process's own CPU time (every thread's, from /proc/<pid>/task/*/schedstat, in
nanoseconds), not wall time, so a loaded machine slows both sides without changing the per-value cost
much. The Modbus server is a small
asyncio Modbus TCP responder in its own process (answers from a precomputed table, pipelines like a
real TCP gateway, counts requests per unit): it is the device, not under test.

Checks, per run: every reading's value equals the value the server holds for that unit and point
(a response matched to the wrong request would show another unit's value), no message (seq) twice,
every poll complete (8 values per meter and timestamp, or a multiple when two polls share a ms).

    .venv/bin/python -m bench.poll_cost [--rounds 4] [--seconds 20] [--flat] [--old 308c926]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Broker, free_port, print_table  # noqa: E402

METERS = 10
PROFILE = "chint_ddsu666"


def expected_value(unit: int, index: int) -> float:
    """The value the server holds for point `index` of `unit`: exact in float32, distinct per unit."""
    return unit * 100 + index + 0.5


# -- the device: a minimal Modbus TCP responder ---------------------------------------------------


def _point_table() -> dict[tuple[int, int], float]:
    """(function, address) -> wire value (before the profile's scale) of every DDSU666 point."""
    from drivers.modbus.profiles import profile_points

    table: dict[tuple[int, int], float] = {}
    for index, point in enumerate(profile_points(PROFILE)):
        table[(point.spec.function, point.spec.address)] = index
    return table


def _registers(unit: int) -> dict[tuple[int, int], int]:
    """(function, register address) -> 16-bit word, for one unit."""
    from drivers.modbus.profiles import profile_points

    words: dict[tuple[int, int], int] = {}
    for index, point in enumerate(profile_points(PROFILE)):
        wire = expected_value(unit, index) / (point.spec.scale or 1.0)
        hi, lo = struct.unpack(">HH", struct.pack(">f", wire))
        words[(point.spec.function, point.spec.address)] = hi
        words[(point.spec.function, point.spec.address + 1)] = lo
    return words


class _Responder(asyncio.Protocol):
    def __init__(self, tables: dict[int, dict[tuple[int, int], int]], counts: Counter[int]) -> None:
        self.tables = tables
        self.counts = counts
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.cache: dict[bytes, bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while len(self.buf) >= 7:
            tid, _pid, length = struct.unpack_from(">HHH", self.buf)
            if len(self.buf) < 6 + length:
                break
            frame, self.buf = self.buf[6 : 6 + length], self.buf[6 + length :]
            unit, function = frame[0], frame[1]
            self.counts[unit] += 1
            body = self.cache.get(frame)
            if body is None:
                body = self._answer(unit, function, frame[2:])
                self.cache[frame] = body
            out.append(struct.pack(">HHH", tid, 0, len(body)) + body)
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def _answer(self, unit: int, function: int, pdu: bytes) -> bytes:
        table = self.tables.get(unit)
        if table is None:
            return bytes([unit, function | 0x80, 0x0B])
        address, count = struct.unpack(">HH", pdu[:4])
        words = [table.get((function, a), 0) for a in range(address, address + count)]
        return bytes([unit, function, 2 * count]) + struct.pack(f">{count}H", *words)


def serve(port: int, counts_path: Path) -> None:
    """Run the responder until SIGTERM; then write the per-unit request counts."""
    tables = {u: _registers(u) for u in range(1, METERS + 1)}
    counts: Counter[int] = Counter()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Responder(tables, counts), "127.0.0.1", port)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    asyncio.run(main())
    counts_path.write_text(json.dumps({str(k): v for k, v in counts.items()}))


# -- the counting subscriber -----------------------------------------------------------------------


class Counting:
    """Counts telemetry values and checks each against the server's table."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from drivers.modbus.profiles import profile_points

        self.index = {p.name: i for i, p in enumerate(profile_points(PROFILE))}
        self.lock = threading.Lock()
        self.values = 0
        self.wrong = 0
        self.duplicates = 0
        self.seqs: set[int] = set()
        self.per_poll: Counter[tuple[str, int]] = Counter()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"count-{os.getpid()}")
        self.client.on_connect = lambda c, *_: c.subscribe("lintel/+/+/telemetry/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        body = json.loads(msg.payload)
        meter = body["source_id"]
        unit = int(meter.removeprefix("m"))
        with self.lock:
            if body["seq"] in self.seqs:  # the delivery contract's duplicate: a message seen twice
                self.duplicates += 1
                return
            self.seqs.add(body["seq"])
            for r in body["readings"]:
                self.values += 1
                self.per_poll[(meter, r["ts_ms"])] += 1
                if abs(r["value"] - expected_value(unit, self.index[r["point"]])) > 1e-3:
                    self.wrong += 1

    def snapshot(self) -> int:
        with self.lock:
            return self.values

    def incomplete_polls(self) -> int:
        with self.lock:
            # two polls of one meter may share a millisecond flat out: a complete poll adds 8 values
            return sum(1 for n in self.per_poll.values() if n % len(self.index))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# -- one gateway run --------------------------------------------------------------------------------


def _config(
    folder: Path, broker_port: int, modbus_port: int, interval_s: float, inflight: int | None
) -> Path:
    meters = "\n".join(
        f'[[sources.meters]]\nid = "m{u}"\nunit = {u}\nprofile = "{PROFILE}"\n' for u in range(1, METERS + 1)
    )
    extra = f"max_inflight = {inflight}\n" if inflight else ""
    path = folder / "config.toml"
    path.write_text(
        f"""[gateway]
id = "bench"
site = "poll"
state_dir = "{folder / "state"}"
runtime_dir = "{folder / "run"}"

[mqtt]
url = "mqtt://127.0.0.1:{broker_port}"

[[sources]]
type = "modbus"
id = "bus"
endpoint = "tcp://127.0.0.1:{modbus_port}"
interval_s = {interval_s}
timeout_ms = 1000
retries = 0
{extra}
{meters}"""
    )
    return path


def _cpu_s(pid: int) -> float:
    """CPU seconds of every thread of `pid`, in nanoseconds' precision (/proc/<pid>/task/*/schedstat:
    utime/stime in /proc/<pid>/stat count 10 ms ticks, too coarse for an idle gateway's 6 ms/s)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended between the listing and the read
    return total / 1e9


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_once(tree: Path, seconds: float, interval_s: float, inflight: int | None) -> dict[str, float]:
    """One gateway from `tree` on a fresh broker, server and state dir; the figures of its window."""
    broker = Broker()
    folder = Path(tempfile.mkdtemp(prefix="lintel-poll-"))
    modbus_port = free_port()
    counts_path = folder / "counts.json"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.poll_cost",
            "serve",
            "--port",
            str(modbus_port),
            "--out",
            str(counts_path),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    counter = Counting(broker.port)
    config = _config(folder, broker.port, modbus_port, interval_s, inflight)
    gw = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "run", "-c", str(config)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while counter.snapshot() < 10 * 8 * METERS and time.monotonic() < deadline:
            time.sleep(0.1)
        if gw.poll() is not None:
            raise RuntimeError(f"{tree}: gateway exited with {gw.returncode}")
        time.sleep(2.0)  # past start-up (births, first stats)
        cpu0, values0, t0 = _cpu_s(gw.pid), counter.snapshot(), time.monotonic()
        time.sleep(seconds)
        cpu1, values1, t1 = _cpu_s(gw.pid), counter.snapshot(), time.monotonic()
        rss = _rss_mb(gw.pid)
    finally:
        gw.send_signal(signal.SIGTERM)
        try:
            gw.wait(timeout=30)
        except subprocess.TimeoutExpired:
            gw.kill()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    time.sleep(0.5)  # the last messages of the graceful stop
    requests = sum(json.loads(counts_path.read_text()).values()) if counts_path.exists() else 0
    result = {
        "values": values1 - values0,
        "values_s": (values1 - values0) / (t1 - t0),
        "cpu_s": cpu1 - cpu0,
        "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
        "cpu_us_per_value": 1e6 * (cpu1 - cpu0) / max(1, values1 - values0),
        "rss_mb": rss,
        "wrong": counter.wrong,
        "duplicates": counter.duplicates,
        "incomplete_polls": counter.incomplete_polls(),
        "requests": requests,
        "total_values": counter.snapshot(),
        # polls the server answered whose values never arrived: only those cut short by the stop
        # (at most one per request in flight) may be missing; anything more is a loss
        "undelivered_polls": requests // 2 - counter.snapshot() // 8,
    }
    counter.close()
    broker.stop()
    return result


def unpack_ref(ref: str) -> Path:
    """The old tree: `git archive <ref>` unpacked once into a cache folder."""
    commit = subprocess.check_output(["git", "rev-parse", ref], cwd=ROOT, text=True).strip()
    target = Path(tempfile.gettempdir()) / f"lintel-{commit[:12]}"
    if not (target / "gateway").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
        with tempfile.TemporaryFile() as f:
            f.write(archive)
            f.seek(0)
            with tarfile.open(fileobj=f) as tar:
                tar.extractall(target, filter="data")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    srv = sub.add_parser("serve")
    srv.add_argument("--port", type=int, required=True)
    srv.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--period", type=float, default=1.0, help="poll interval of every meter (s)")
    parser.add_argument("--flat", action="store_true", help="poll as fast as the bus answers")
    parser.add_argument("--inflight", type=int, default=4, help="max_inflight of the new gateway (--flat)")
    parser.add_argument("--old", default="308c926", help="git ref of the baseline")
    args = parser.parse_args()
    if args.cmd == "serve":
        serve(args.port, args.out)
        return
    old = unpack_ref(args.old)
    interval = 0.001 if args.flat else args.period
    inflight = args.inflight if args.flat else None
    rows: list[tuple[str, str, str]] = []
    ratios: dict[str, list[float]] = {"cpu_us_per_value": [], "cpu_pct": [], "values_s": []}
    checks = Counter[str]()
    for n in range(args.rounds):
        pair = {}
        order = [("old", old, None), ("new", ROOT, inflight)]
        if n % 2:
            order.reverse()  # alternate who goes first, so drift over time hits both sides
        for name, tree, limit in order:
            pair[name] = run_once(tree, args.seconds, interval, limit)
            for key in ("wrong", "duplicates", "incomplete_polls", "undelivered_polls"):
                checks[f"{name} {key}"] += int(pair[name][key])
        for key in ratios:
            ratios[key].append(pair["new"][key] / pair["old"][key])
        rows.append(
            (
                f"round {n + 1}",
                f"{pair['new']['cpu_us_per_value']:.1f} / {pair['old']['cpu_us_per_value']:.1f} µs per value "
                f"= {ratios['cpu_us_per_value'][-1]:.2f}",
                f"CPU {pair['new']['cpu_pct']:.2f} / {pair['old']['cpu_pct']:.2f} % of a core; "
                f"{pair['new']['values_s']:.0f} / {pair['old']['values_s']:.0f} values/s; "
                f"RSS {pair['new']['rss_mb']:.0f} / {pair['old']['rss_mb']:.0f} MB",
            )
        )
    for key, label in (
        ("cpu_us_per_value", "CPU per value, new/old"),
        ("cpu_pct", "CPU % of a core, new/old"),
        ("values_s", "values/s, new/old"),
    ):
        vals = ratios[key]
        rows.append(
            (label, f"median {statistics.median(vals):.2f}", f"rounds {', '.join(f'{v:.2f}' for v in vals)}")
        )
    for name in ("old", "new"):
        rows.append(
            (
                f"checks, {name}",
                ", ".join(f"{k.split(' ', 1)[1]} {v}" for k, v in checks.items() if k.startswith(name)),
                "0 wrong, duplicated, incomplete; undelivered <= requests in flight x rounds",
            )
        )
    mode = "flat out" if args.flat else f"{args.period:g} s period"
    print_table(
        f"Poll cost, {METERS} meters x 8 points over Modbus TCP, {mode}: new vs {args.old}", rows, 160
    )


if __name__ == "__main__":
    main()
