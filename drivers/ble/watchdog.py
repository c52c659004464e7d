"""The scanner watchdog: decides when to restart the scanner, reset the adapter or raise the alarm.

Pure logic, driven by the source with monotonic times, so every path is testable without a radio:

- scanning but no advert from anyone for `silence_s` → restart the scanner; still silent after the
  restart → reset the adapter (power cycle);
- the scanner fails to start (`org.bluez.Error.InProgress`, adapter gone, bluetoothd down) → retry
  after `retry_s`; `FAILURES_BEFORE_RESET` failures in a row → reset the adapter;
- after `max_resets` resets without an advert → `ble_adapter_failed` (alarm, once), then keep trying
  every `failed_retry_s`: recovery is automatic, and the first advert after it closes the episode
  with `ble_adapter_recovered`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FAILURES_BEFORE_RESET = 3

StepKind = Literal["retry", "restart", "reset"]


@dataclass(frozen=True, slots=True)
class Step:
    """What to do next: `retry` (start again after `delay_s`), `restart` (stop, then start), or
    `reset` (power-cycle the adapter, then start). `alarm` asks for the ble_adapter_failed alarm."""

    kind: StepKind
    delay_s: float = 0.0
    alarm: bool = False
    reason: str = ""


class ScannerWatchdog:
    def __init__(
        self, silence_s: float, max_resets: int = 3, retry_s: float = 2.0, failed_retry_s: float = 30.0
    ) -> None:
        self.silence_s = silence_s
        self.max_resets = max_resets
        self.retry_s = retry_s
        self.failed_retry_s = failed_retry_s
        self.failed = False  # the alarm is raised and not yet cleared by an advert
        self.restarts = 0
        self.resets = 0
        self._resets_in_episode = 0
        self._failures_in_row = 0
        self._silent_restart = False  # the last restart was for silence and nothing came since
        self._last_advert = 0.0

    def started(self, now: float) -> None:
        """The scanner is running; silence is counted from now."""
        self._failures_in_row = 0
        self._last_advert = now

    def advert(self, now: float) -> bool:
        """An advert arrived. True when it ends a failure episode (send ble_adapter_recovered)."""
        self._last_advert = now
        self._silent_restart = False
        self._resets_in_episode = 0
        recovered, self.failed = self.failed, False
        return recovered

    def check(self, now: float) -> Step | None:
        """While scanning: a step when the radio has been silent too long, else None."""
        if now - self._last_advert < self.silence_s:
            return None
        self._last_advert = now
        if not self._silent_restart:
            self._silent_restart = True
            self.restarts += 1
            return Step("restart", reason=f"no advert for {self.silence_s:.0f} s")
        return self._reset(f"still no advert for {self.silence_s:.0f} s after a scanner restart")

    def start_failed(self, error: str) -> Step:
        """The scanner could not start: retry, reset the adapter, or give up loudly (and keep trying)."""
        self._failures_in_row += 1
        if self._failures_in_row < FAILURES_BEFORE_RESET:
            return Step("retry", self.failed_retry_s if self.failed else self.retry_s, reason=error)
        self._failures_in_row = 0
        return self._reset(error)

    def _reset(self, reason: str) -> Step:
        if self._resets_in_episode < self.max_resets:
            self._resets_in_episode += 1
            self.resets += 1
            return Step("reset", self.retry_s, reason=reason)
        alarm = not self.failed
        self.failed = True
        return Step("retry", self.failed_retry_s, alarm=alarm, reason=reason)
