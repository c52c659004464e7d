"""Whether the system clock is synchronised, as the kernel reports it (what `timedatectl` shows).

The command replay guard refuses commands (`clock_unsynced`) while this says no: a clock that no
time server has disciplined since boot (a Pi without RTC that restored fake-hwclock's saved time, or
a clock set back by an NTP answer still being checked) cannot tell a fresh command from a replayed one.

`KernelClockSync` follows systemd's `ntp_synced()` (src/basic/time-util.c): `adjtimex(2)` with no
modes set, and the clock counts as synchronised when the kernel's estimated maximum error is below
16 s. The kernel raises `maxerror` to 16 s while no NTP daemon (timesyncd, chrony, ntpd) keeps it
updated, so "synchronised" means a time daemon has disciplined the clock recently. The STA_UNSYNC
status bit is ignored, as systemd ignores it (some daemons keep it set to stop the kernel writing the
RTC).

Tests and installs that run without a time daemon by design inject `AssumeSynced` (config
`[commands] clock_sync = "assume"`); tests of our own logic may pass any object with `synchronized()`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Protocol

# systemd: "the maximum value (16 seconds)"; the kernel's NTP_PHASE_LIMIT in microseconds.
MAX_ERROR_US = 16_000_000


class ClockSync(Protocol):
    def synchronized(self) -> bool:
        """True while the wall clock is kept by a time server (see the module docstring)."""
        ...


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (glibc, Linux): only the fields up to `status` are read; the
    # padding covers the rest of the struct (the kernel writes all of it).
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("rest", ctypes.c_long * 32),
    ]


class KernelClockSync:
    """The kernel's view through `adjtimex(2)` (read-only: no modes set)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        self._adjtimex = getattr(ctypes.CDLL(name, use_errno=True), "adjtimex", None) if name else None

    def synchronized(self) -> bool:
        if self._adjtimex is None:  # not Linux/glibc: nothing says the clock is kept
            return False
        timex = _Timex()
        if self._adjtimex(ctypes.byref(timex)) < 0:
            return False
        return bool(timex.maxerror < MAX_ERROR_US)


class AssumeSynced:
    """A clock trusted without a time daemon (an RTC-equipped, isolated site; tests)."""

    def synchronized(self) -> bool:
        return True


class SettableSync:
    """A sync state set by hand (tests of our own logic)."""

    def __init__(self, synced: bool = True) -> None:
        self.synced = synced

    def synchronized(self) -> bool:
        return self.synced
