"""The shipped unit file passes systemd's own checks and is hardened to exposure <= 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "lintel.service"


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is missing: scripts/test.sh installs Debian's systemd package"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def test_unit_verifies(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's installed command.
    lintel = shutil.which("lintel") or str(ROOT / ".venv" / "bin" / "lintel")
    assert Path(lintel).exists()
    unit = tmp_path / "lintel.service"
    text = UNIT.read_text()
    assert "/opt/lintel/current/bin/lintel run" in text and "+/opt/lintel/committed/bin/lintel-guard" in text
    text = text.replace("/opt/lintel/current/bin/lintel", lintel)
    unit.write_text(text.replace("/opt/lintel/committed/bin/lintel-guard", lintel))
    out = _analyze("verify", str(unit))
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", out.stderr


def test_unit_security_exposure_is_at_most_2() -> None:
    out = _analyze("security", "--offline=yes", "--no-pager", str(UNIT))
    match = re.search(r"Overall exposure level for lintel.service: (\d+\.\d+)", out.stdout)
    assert match, out.stdout[-500:] + out.stderr
    assert float(match.group(1)) <= 2.0


def test_unit_is_type_notify_with_watchdog_and_state_directory() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "StateDirectory=lintel",
        "RuntimeDirectory=lintel",
        "RestartPreventExitStatus=78",
    ):
        assert line in text


def test_the_unit_restarts_every_exit_but_a_config_error_and_each_exit_says_one_thing() -> None:
    """README "Exit codes": systemd restarts the service after a rollback request (else the guard
    never runs to switch back) and after a busy state folder or a passing trouble, never after a
    config error; and a rollback reads as a rollback, not as "try again"."""
    from gateway.cli.run import EXIT_BUSY, EXIT_TEMPFAIL
    from gateway.releases.probation import EXIT_ROLLBACK

    settings = [
        line.split("=", 1) for line in UNIT.read_text().splitlines() if "=" in line and line[0] != "#"
    ]
    values = {key: value for key, value in settings}
    assert values["Restart"] == "on-failure"
    prevented = {int(code) for code in values["RestartPreventExitStatus"].split()}
    assert prevented == {78}
    assert EXIT_ROLLBACK not in prevented and EXIT_TEMPFAIL not in prevented and EXIT_BUSY not in prevented
    assert EXIT_ROLLBACK not in (0, 1, 2, EXIT_TEMPFAIL, 78)  # 1: a crash, 2: a usage error


def test_update_units_verify(tmp_path: Path) -> None:
    """The path unit that hands a verified remote update request to the root runner, and the runner."""
    lintel = shutil.which("lintel") or str(ROOT / ".venv" / "bin" / "lintel")
    for name in ("lintel-update.service", "lintel-update.path"):
        text = (ROOT / "systemd" / name).read_text().replace("/opt/lintel/committed/bin/lintel", lintel)
        (tmp_path / name).write_text(text)
    out = _analyze("verify", str(tmp_path / "lintel-update.path"), str(tmp_path / "lintel-update.service"))
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", out.stderr
