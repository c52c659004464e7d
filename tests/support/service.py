"""A stand-in for systemd running lintel.service, for the update tests and the update bench.

What it does, as the unit says: before each start the boot guard (ExecStartPre=+, from the
`committed` release), then `current/bin/lintel run` (ExecStart); a failed exit (non-zero, or killed
by a signal) is restarted after `restart_s` (Restart=on-failure; the unit has RestartSec=5s), but
not exit 78 (RestartPreventExitStatus=78) nor a clean exit 0; `restart()` is `systemctl restart`.
With `watchdog_s` / `start_timeout_s` it also speaks sd_notify (Type=notify): NOTIFY_SOCKET (an
abstract socket) and WATCHDOG_USEC in the service's environment; a start without READY=1 within
`start_timeout_s` gets SIGTERM (TimeoutStartSec=), a running service without WATCHDOG=1 for
`watchdog_s` gets SIGABRT and SIGCONT (WatchdogSec=, WatchdogSignal=SIGABRT, SendSIGCONT=yes),
then SIGKILL to the group after `abort_s`; both are failures, restarted like a crash (`Run.killed_by`).

What a real systemd does differently: the unit's values are 60 s for both (the tests use seconds);
it accepts notifications only from the main process (NotifyAccess=main: this stand-in takes any
sender's); StartLimitBurst (default 5 starts in 10 s) could stop restarting a release that crashes
at once, which RestartSec=5s keeps out of reach (3 starts at most need 15 s); it runs the guard as
root and the service as user lintel with ProtectSystem=strict (here both run as the test's user);
and a power cut loses the page cache, which kill -9 does not (the state file and links are fsynced
for that). Why no real systemd (not even `systemd --user`) runs these tests: README "Updates and
rollback".
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    version: str | None
    started: float
    rc: int | None = None
    ready_at: float | None = None  # READY=1 received (monotonic)
    last_ping: float | None = None  # the last WATCHDOG=1
    killed_by: str | None = None  # "watchdog" or "start_timeout" when the stand-in killed it


@dataclass
class ServiceStandIn:
    root: Path
    config: Path
    log: Path
    restart_s: float = 0.3
    watchdog_s: float | None = None  # WatchdogSec=
    start_timeout_s: float | None = None  # TimeoutStartSec=
    abort_s: float = 5.0  # TimeoutAbortSec= / TimeoutStopSec=: SIGKILL after the first signal
    runs: list[Run] = field(default_factory=list)
    guard_lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = False
        self._restart = threading.Event()
        self._lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True, name="service-stand-in")
        self._notify: socket.socket | None = None
        self.env = dict(os.environ)
        if self.watchdog_s or self.start_timeout_s:
            name = f"lintel-stand-in-{secrets.token_hex(6)}"
            self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._notify.bind("\0" + name)
            self._notify.settimeout(0.2)
            self.env["NOTIFY_SOCKET"] = "@" + name
            if self.watchdog_s:
                self.env["WATCHDOG_USEC"] = str(int(self.watchdog_s * 1_000_000))
            threading.Thread(target=self._listen, daemon=True, name="service-stand-in-notify").start()

    def start(self) -> ServiceStandIn:
        self._thread.start()
        return self

    def _listen(self) -> None:
        assert self._notify is not None
        while not self._stop:
            try:
                data = self._notify.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            run = self.runs[-1] if self.runs else None
            if run is None or run.rc is not None:
                continue
            lines = data.decode(errors="replace").splitlines()
            now = time.monotonic()
            if "READY=1" in lines and run.ready_at is None:
                run.ready_at = run.last_ping = now
            if "WATCHDOG=1" in lines:
                run.last_ping = now

    def _overdue(self, run: Run) -> str | None:
        now = time.monotonic()
        if run.ready_at is None:
            if self.start_timeout_s and now - run.started > self.start_timeout_s:
                return "start_timeout"
        elif self.watchdog_s and run.last_ping is not None and now - run.last_ping > self.watchdog_s:
            return "watchdog"
        return None

    def _wait(self, proc: subprocess.Popen[bytes], run: Run) -> int:
        """The service's exit status, killing it as systemd would on a start timeout or watchdog."""
        signalled_at: float | None = None
        while True:
            try:
                return proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
            if signalled_at is None and (why := self._overdue(run)) is not None:
                run.killed_by, signalled_at = why, time.monotonic()
                with contextlib.suppress(ProcessLookupError):
                    if why == "watchdog":
                        os.kill(proc.pid, signal.SIGABRT)
                        os.kill(proc.pid, signal.SIGCONT)
                    else:
                        os.kill(proc.pid, signal.SIGTERM)  # KillMode=mixed: the main process first
            elif signalled_at is not None and time.monotonic() - signalled_at > self.abort_s:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

    def _loop(self) -> None:
        while not self._stop:
            guard = subprocess.run(
                [
                    str(self.root / "committed/bin/lintel-guard"),
                    "-c",
                    str(self.config),
                    "--root",
                    str(self.root),
                ],
                capture_output=True,
                text=True,
            )
            self.guard_lines.append((guard.stdout + guard.stderr).strip())
            version = Path(os.readlink(self.root / "current")).name if guard.returncode == 0 else None
            run = Run(version, time.monotonic())
            rc: int | None = guard.returncode
            if guard.returncode == 0:
                with open(self.log, "ab") as out, self._lock:
                    if self._stop:
                        return
                    run.started = time.monotonic()
                    self.runs.append(run)
                    self.proc = subprocess.Popen(
                        [str(self.root / "current/bin/lintel"), "run", "-c", str(self.config)],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        env=self.env,
                    )
                rc = self._wait(self.proc, run)
            run.rc = rc
            if self._stop:
                return
            if self._restart.is_set():
                self._restart.clear()
                continue
            killed = self.runs[-1].killed_by if self.runs and self.runs[-1] is run else None
            # a start timeout or a watchdog kill is a failure whatever the exit status (systemd's
            # result "timeout"/"watchdog"): restarted; a clean exit 0 or 78 is not
            if rc in (0, 78) and killed is None:  # not restarted: wait for `systemctl restart`
                while not self._restart.wait(0.1):
                    if self._stop:
                        return
                self._restart.clear()
                continue
            time.sleep(self.restart_s)

    def _signal(self, sig: int) -> None:
        with self._lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

    def restart(self) -> None:
        """`systemctl restart lintel`: stop (SIGTERM), then start again at once."""
        self._restart.set()
        self._signal(signal.SIGTERM)

    def kill9(self) -> None:
        """kill -9 of the whole service (its process group), as systemd's KillMode would."""
        self._signal(signal.SIGKILL)

    def stop(self, timeout: float = 30) -> None:
        self._stop = True
        self._signal(signal.SIGTERM)
        self._thread.join(timeout)
        self._signal(signal.SIGKILL)
        if self._notify is not None:
            self._notify.close()

    def running_version(self) -> str | None:
        with self._lock:
            proc = self.proc
        if proc is None or proc.poll() is not None or not self.runs:
            return None
        return self.runs[-1].version


@dataclass
class UpdatePathStandIn:
    """A stand-in for `lintel-update.path` starting `lintel-update.service` (no systemd here; see
    ServiceStandIn): while the request file exists (PathExists=), run the unit's own ExecStart line,
    read from systemd/lintel-update.service with its paths rewritten to the test's and `extra`
    arguments appended (a release store, apt settings). The runner's `systemctl restart lintel`
    finds no systemd (no /run/systemd/system) and says so; this stand-in then restarts `service`."""

    root: Path
    config: Path
    state_dir: Path
    service: ServiceStandIn
    extra: list[str]
    unit: Path = Path(__file__).resolve().parents[2] / "systemd" / "lintel-update.service"
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="update-path-stand-in")

    def argv(self) -> list[str]:
        exec_start = next(
            line.split("=", 1)[1]
            for line in self.unit.read_text().splitlines()
            if line.startswith("ExecStart=")
        )
        text = exec_start.replace("/opt/lintel", str(self.root)).replace(
            "/etc/lintel/config.toml", str(self.config)
        )
        return [*text.split(), *self.extra]

    def start(self) -> UpdatePathStandIn:
        self._thread.start()
        return self

    def _loop(self) -> None:
        request = self.state_dir / "update-request.json"
        while not self._stop.wait(0.1):
            if not request.exists():
                continue
            done = subprocess.run(self.argv(), capture_output=True, text=True, timeout=600)
            self.runs.append(done)
            if done.returncode == 0 and "systemd is not running" in done.stdout:
                self.service.restart()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
