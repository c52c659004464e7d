"""Why a command was not executed: a fixed set of codes, counted and logged without flooding.

Every refusal carries one `Code`; the result sent back says `code` plus a sentence (`reason`) that
may hold numbers and names. Counters are keyed by the code only, so a flood of refusals grows
counts, never the number of keys. A code is logged once per episode: the first refusal of that
code logs a WARNING, later ones are only counted until the code has been quiet for `quiet_s`; the
next episode's first line says how many were counted silently before it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from gateway.core import Clock

log = logging.getLogger("lintel.commands")


class Code(StrEnum):
    MALFORMED = "malformed"  # not JSON, too large, or not the command schema
    UNSIGNED = "unsigned"  # no signature, and the command is not one accepted unsigned
    UNKNOWN_KEY = "unknown_key"  # key_id names no [[commands.operators]] key
    BAD_SIGNATURE = "bad_signature"  # the signature does not verify for that key
    WRONG_GATEWAY = "wrong_gateway"  # addressed to another gateway or site (or to none)
    NOT_ALLOWED = "not_allowed"  # the key (or this gateway) does not allow that command
    DOOR_NOT_ALLOWED = "door_not_allowed"  # the key may pulse doors, not that one
    EXPIRED = "expired"  # older than max_age_s, or past its expires_ms
    CLOCK_SKEW = "clock_skew"  # dated further ahead than max_skew_s
    CLOCK_UNSET = "clock_unset"  # the gateway's own clock is not set: freshness cannot be judged
    CLOCK_UNSYNCED = "clock_unsynced"  # the system says no time server keeps the clock
    CLOCK_BEHIND = "clock_behind"  # the clock reads earlier than commands already accepted
    REPLAYED = "replayed"  # nonce already used
    RATE_LIMITED = "rate_limited"  # the sender's budget per minute is spent
    UNAVAILABLE = "unavailable"  # no handler for it on this gateway
    HANDLER_REFUSED = "refused"  # the handler declined (unknown alarm, unknown door, …)
    FAILED = "failed"  # executed, and it went wrong
    INTERNAL_ERROR = "internal_error"  # a bug (logged with its traceback)


class Refusal(Exception):
    """A command not executed, with its code and a sentence a sender can act on."""

    def __init__(self, code: Code, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


@dataclass(slots=True)
class _Episode:
    last: float
    silent: int = 0


class RefusalLog:
    """Counts refusals by code and logs each code once per episode (see the module docstring)."""

    def __init__(self, clock: Clock, quiet_s: float = 300.0) -> None:
        self.clock = clock
        self.quiet_s = quiet_s
        self.counts: dict[Code, int] = {}
        self._episodes: dict[Code, _Episode] = {}
        self.lines_logged = 0

    def note(self, code: Code, line: str) -> None:
        self.counts[code] = self.counts.get(code, 0) + 1
        now = self.clock.monotonic()
        episode = self._episodes.get(code)
        if episode is not None and now - episode.last < self.quiet_s:
            episode.last = now
            episode.silent += 1
            return
        before = f"; {episode.silent} more were only counted in the previous episode" if episode else ""
        self._episodes[code] = _Episode(now)
        self.lines_logged += 1
        log.warning(
            "%s (further %s refusals are counted, not logged, until %g s without one%s)",
            line,
            code.value,
            self.quiet_s,
            before,
        )

    def snapshot(self) -> dict[str, int]:
        return {code.value: n for code, n in sorted(self.counts.items())}
