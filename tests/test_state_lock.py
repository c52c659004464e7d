"""The state folder's lock (gateway.runtime.state_lock) between real processes: held while the
holder lives, freed by its death (kill -9 included), the holder's pid named to the refused one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.runtime.state_lock import LOCK_NAME, StateFolderBusy, lock_state_folder

HOLDER = """
import sys, time
from pathlib import Path
from gateway.runtime.state_lock import lock_state_folder
lock = lock_state_folder(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""


def hold(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_the_holder_is_named_and_its_death_frees_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    holder = hold(folder)
    try:
        with pytest.raises(StateFolderBusy) as refused:
            lock_state_folder(folder)
        assert refused.value.pid == holder.pid
        assert str(folder.resolve()) in str(refused.value) and f"pid {holder.pid}" in str(refused.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the lock file is still there, with the dead holder's pid: it does not block a start
    assert (folder / LOCK_NAME).read_text() == f"{holder.pid}\n"
    lock = lock_state_folder(folder)
    assert (folder / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert (folder / LOCK_NAME).stat().st_mode & 0o777 == 0o600
    lock.release()


def test_a_second_lock_in_the_same_process_is_refused_until_released(tmp_path: Path) -> None:
    """flock belongs to the open file: the daemon's own tools cannot take the folder twice."""
    first = lock_state_folder(tmp_path / "state")
    with pytest.raises(StateFolderBusy):
        lock_state_folder(tmp_path / "state")
    first.release()
    assert not first.held
    lock_state_folder(tmp_path / "state").release()


def test_a_folder_that_cannot_be_created_is_an_os_error_not_busy(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        lock_state_folder(tmp_path / "file" / "state")
