"""A throw-away PostgreSQL cluster (initdb + pg_ctl) on a free loopback port.

For the tests, the benchmark and scripts/fleet-demo.sh: Debian's `postgresql` package, run as a
non-root user (PostgreSQL refuses to run as root; as root we run it as `postgres`). Authentication
is `trust` on loopback only: never a production set-up.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def pg_tool(name: str) -> str:
    for d in PG_BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: install Debian's postgresql (scripts/setup.sh --test)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalPostgres:
    """A cluster in its own directory (created, owned by the run-as user); `dsn` to connect."""

    root: Path | None = None
    port: int = field(default_factory=free_port)
    settings: dict[str, str] = field(default_factory=dict)
    user: str = "fleet"

    def __post_init__(self) -> None:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="lintel-pg-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.run_as = "postgres" if os.geteuid() == 0 else None

    def _run(self, *argv: str) -> None:
        done = subprocess.run(self._cmd(*argv), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed: {(done.stderr or done.stdout).strip()[-1500:]}")

    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else list(argv)

    def _own(self, path: Path) -> None:
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def start(self) -> LocalPostgres:
        assert self.root is not None
        os.chmod(self.root, 0o755)
        self._own(self.root)
        if not (self.data / "PG_VERSION").exists():
            self._run(
                pg_tool("initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            )
        opts = [f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=127.0.0.1"]
        opts += [f"-c {k}={v}" for k, v in self.settings.items()]
        self._run(
            pg_tool("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(opts),
            "start",
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = subprocess.run(
                [pg_tool("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
            )
            if probe.returncode == 0:
                break
            time.sleep(0.1)
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._cmd(pg_tool("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"),
                capture_output=True,
            )

    def remove(self) -> None:
        self.stop("immediate")
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"
