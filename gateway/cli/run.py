"""`lintel run`: the daemon in the foreground (systemd's ExecStart)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from gateway.cli.logs import setup_logging
from gateway.config import LoadedConfig, config_warnings, load_config
from gateway.config.deploy_files import DeployFiles, Recorded
from gateway.config.secrets import GatewayKey, SecretError, SecretStore
from gateway.core import ConfigError, SystemClock

log = logging.getLogger("lintel")

# Errors opening files under state_dir that a restart cannot fix (EX_CONFIG, not a retry).
_FOLDER_ERRORS = {errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EROFS, errno.EISDIR}


# Files the daemon creates (outbox.db, state.db, status.json, the overlay, evidence images) hold
# residents' data: owner-only, whether or not systemd's UMask= applies (a manual or container run).
DAEMON_UMASK = 0o077

# EX_TEMPFAIL: something that may pass (a full disk, files being replaced); systemd tries again.
EXIT_TEMPFAIL = 75
# Another daemon holds the state folder (gateway.runtime.state_lock). EX_TEMPFAIL, not EX_CONFIG:
# the other one may stop (a manual run beside the service), and systemd then starts this one again.
# (A release on probation asking for its rollback exits EXIT_ROLLBACK, 10: README "Exit codes".)
EXIT_BUSY = EXIT_TEMPFAIL


def cmd_run(args: argparse.Namespace) -> int:
    os.umask(DAEMON_UMASK)  # first, before any file or folder is opened or created
    # A stop request during start-up (imports, opening the outbox) is remembered, not fatal:
    # the daemon starts, sees it, and stops cleanly.
    early: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: early.append(signum))
    setup_logging("info")
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("config %s: %s", exc.source, problem)
        log.error("not starting: fix the config (lintel check-config -c %s lists every problem)", args.config)
        from gateway import __version__
        from gateway.releases.guard import state_dir_of
        from gateway.releases.probation import EXIT_ROLLBACK, abandon

        why = f"release {__version__} refused the config: {exc.problems[0] if exc.problems else exc}"
        if abandon(state_dir_of(Path(args.config)), __version__, why):
            log.error("this release is on probation: asking for a rollback to the previous one")
            return EXIT_ROLLBACK
        # EX_CONFIG: systemd's RestartPreventExitStatus keeps a broken config from crash-looping.
        return 78
    from gateway.runtime.state_lock import StateFolderBusy, lock_state_folder

    try:  # before anything in the folder is read or written; held until this process ends
        lock = lock_state_folder(loaded.state_dir)
    except StateFolderBusy as exc:
        log.error("not starting: %s", exc)
        return EXIT_BUSY
    except OSError as exc:
        if exc.errno not in _FOLDER_ERRORS:
            raise
        return _folder_unusable(args.config, loaded.state_dir, exc)
    try:
        start = _choose_config(loaded)
    except (OSError, SecretError) as exc:
        log.error("not starting: the deployment files under %s: %s", loaded.state_dir, exc)
        return EXIT_TEMPFAIL
    loaded = start.loaded
    setup_logging(loaded.config.log.level)
    for warning in config_warnings(loaded):
        log.warning("config %s: %s", args.config, warning)
    from gateway.releases.formats import FormatError
    from gateway.runtime.daemon import Daemon, run_daemon
    from gateway.runtime.deploy import Deployer
    from gateway.storage.outbox.store import OutboxUnavailable

    deployer = Deployer(
        loaded,
        start.key,
        start.files,
        SystemClock(),
        lambda record: daemon.core.pipeline.submit(record),
        lambda reason: daemon.request_restart(reason),
        start.on_probation,
        start.previous,
    )
    try:
        daemon = Daemon(loaded, clock=deployer.clock, deployer=deployer)
    except (OutboxUnavailable, FormatError) as exc:
        return _not_started(exc, loaded.state_dir)
    except OSError as exc:
        if exc.errno not in _FOLDER_ERRORS:
            raise
        # The state folder vanished or lost its permissions after the check: a config-side fix.
        return _folder_unusable(args.config, loaded.state_dir, exc)
    asyncio.run(run_daemon(daemon, early_stops=len(early)))
    if daemon.restart_reason is not None:
        lock.release()  # the new image takes it again (the descriptor would close at exec anyway)
        _reexec(daemon.restart_reason)
    return daemon.exit_code


def _folder_unusable(config: str, state_dir: Path, exc: OSError) -> int:
    log.error(
        "config %s: gateway.state_dir: cannot use %s: %s; expected a writable folder for the service user",
        config,
        state_dir,
        exc.strerror or exc,
    )
    return 78


def _not_started(exc: Exception, state_dir: Path) -> int:
    """The exit code when the outbox or a data file cannot be opened. A file in a format this
    release may not use (`gateway.releases.formats`): a release on probation asks for a rollback;
    otherwise a person must act (exit 78: restarting cannot help). Anything else may pass (75)."""
    from gateway import __version__
    from gateway.releases.formats import FormatError
    from gateway.releases.probation import EXIT_ROLLBACK, abandon

    if not isinstance(exc, FormatError) and not isinstance(exc.__cause__, FormatError):
        log.error("not starting: %s (systemd will try again)", exc)
        return EXIT_TEMPFAIL  # a full disk or a permission problem may pass
    log.error("not starting: %s", exc)
    if abandon(state_dir, __version__, f"release {__version__} cannot use its data: {exc}"):
        log.error("this release is on probation: asking for a rollback to the previous one")
        return EXIT_ROLLBACK
    return 78


@dataclass(frozen=True, slots=True)
class _Start:
    loaded: LoadedConfig
    key: GatewayKey
    files: DeployFiles
    on_probation: Recorded | None
    previous: LoadedConfig | None


def _choose_config(local: LoadedConfig) -> _Start:
    """The config this start runs (gateway.config.effective): the local file (with its remote
    tunables), the last-known-good deployment, or a staged deployment on probation."""
    from gateway.config.effective import choose
    from gateway.config.overlay import apply_overlay, drop_overlay

    key = GatewayKey.load_or_create(local.state_dir)
    files = DeployFiles(local.state_dir)
    store = SecretStore(local.state_dir)
    local = replace(local, secrets=store.load())  # a local password_secret names a deployed secret
    start = choose(local, key, store, files)
    if start.loaded.origin == "local":
        # remote tunables, while the local file is the one they were set on
        return _Start(apply_overlay(start.loaded), key, files, None, None)
    drop_overlay(local)  # a deployment carries the whole config: tunables set before it are gone
    return _Start(start.loaded, key, files, start.on_probation, start.previous)


def _reexec(reason: str) -> None:
    """Start `lintel run` again in this process (same pid: systemd's MAINPID stays), on the config
    the deployment files now choose. Everything was committed and closed by the staged stop."""
    log.info("re-executing for %s", reason)
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, "-m", "gateway.cli.main", *sys.argv[1:]])
