"""`lintel modbus scan|read` and `lintel probe` against a real pymodbus server, as an installer runs them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from drivers.modbus.simulator import MeterServer, SimulatedMeter

LINTEL = [sys.executable, "-m", "gateway.cli.main"]


def run_against_server(tmp_path: Path, commands: list[list[str]]) -> list[tuple[int, Any]]:
    async def main() -> list[tuple[int, Any]]:
        meter = SimulatedMeter(1, "eastron_sdm120")
        meter.pin("power_w", 812.5)
        water = SimulatedMeter(4, "generic_water")
        water.pin("volume_m3", 321.5)
        server = MeterServer([meter, water])
        port = await server.start_tcp()
        config = tmp_path / "lintel.toml"
        config.write_text(
            f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{tmp_path}"\nruntime_dir = "{tmp_path}/run"\n'
            f'[[sources]]\nid = "bus-1"\ntype = "modbus"\nendpoint = "tcp://127.0.0.1:{port}"\n'
            '[[sources.meters]]\nid = "m1"\nunit = 1\nprofile = "eastron_sdm120"\nread = ["power_w"]\n'
            '[[sources.meters]]\nid = "gone"\nunit = 9\nprofile = "generic_water"\n'
        )
        results = []
        for cmd in commands:
            argv = [a.replace("{port}", str(port)).replace("{config}", str(config)) for a in cmd]
            proc = await asyncio.create_subprocess_exec(
                *LINTEL, *argv, "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
            results.append((proc.returncode or 0, json.loads(out)))
        await server.stop()
        return results

    return asyncio.run(main())


def test_scan_read_and_probe(tmp_path: Path) -> None:
    (scan_rc, scan), (read_rc, read), (probe_rc, probe) = run_against_server(
        tmp_path,
        [
            ["modbus", "scan", "--endpoint", "tcp://127.0.0.1:{port}", "--units", "1-8"],
            [
                "modbus",
                "read",
                "--endpoint",
                "tcp://127.0.0.1:{port}",
                "--unit",
                "4",
                "--profile",
                "generic_water",
            ],
            ["probe", "bus-1", "-c", "{config}", "--cycles", "2"],
        ],
    )
    # Only the units with a meter behind the TCP gateway count as found.
    assert scan_rc == 0 and [f["unit"] for f in scan["found"]] == [1, 4]
    assert read_rc == 0
    assert {r["point"]: r["value"] for r in read["readings"]}["volume_m3"] == 321.5
    # The probe reads the live meter and says plainly which one did not answer.
    assert probe_rc == 1 and probe["ok"] is False
    values = [r["value"] for r in probe["results"] if r.get("meter") == "m1" and r.get("point") == "power_w"]
    assert values == [812.5, 812.5]
    errors = [r["error"] for r in probe["results"] if r.get("meter") == "gone" and "error" in r]
    assert errors and "gateway target failed to respond" in errors[0]


def test_profiles_show_which_points_are_unverified() -> None:
    # Issue 28: the DDSU666's function code and the meaning of 0x4000 could not be checked against
    # the manufacturer's register map: `lintel modbus profiles` says so, per point, with the reason.
    listed = subprocess.run(
        [*LINTEL, "modbus", "profiles", "--json"], capture_output=True, text=True, check=True
    )
    profiles = json.loads(listed.stdout)
    ddsu = profiles["chint_ddsu666"]["unverified"]
    assert set(ddsu) == set(profiles["chint_ddsu666"]["points"])  # all inherit the unverified function
    assert len(ddsu["energy_import_kwh"]) == 2 and any("total" in why for why in ddsu["energy_import_kwh"])
    assert all(len(why) == 1 and "04H" in why[0] for p, why in ddsu.items() if p != "energy_import_kwh")
    assert profiles["chint_dtsu666"]["unverified"] == {}  # checked against its manual
    table = subprocess.run(
        [*LINTEL, "modbus", "profiles", "chint_ddsu666"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert (
        table.stdout.count("unverified") >= 8
        and "Unverified (energy_import_kwh): 4000H may be total" in table.stdout
    )
