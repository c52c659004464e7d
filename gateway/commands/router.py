"""The command router: bytes in, one result out, never an exception.

Order of checks (the first that fails answers `rejected`): size and JSON, the JSON Schema, the
allow-list (`commands.allow`; commands typed on the gateway itself through `lintel` skip it, the
control socket's file permissions being their authorisation), freshness and nonce, then a handler
for the command must exist on this gateway. A handler raises `Rejected` for a refusal it can state
(unknown alarm, unknown door) and `Failed` when it acted and something went wrong; any other
exception is a bug, answered `failed` and logged with its traceback once per command name.

A flood cannot hurt the gateway: beyond `max_per_minute` commands are counted and dropped unanswered.
Every refusal is counted by reason; the first of each reason is logged, later ones only counted.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.commands.envelope import Command, Malformed, parse_command
from gateway.commands.replay import ReplayGuard
from gateway.core import Clock
from gateway.core.commands import Failed, Handler, Rejected

log = logging.getLogger("lintel.commands")

LOCAL, MQTT = "local", "mqtt"


@dataclass(frozen=True, slots=True)
class CommandContext:
    command: Command
    origin: str

    @property
    def by(self) -> str:
        return self.command.by or ("local technician" if self.origin == LOCAL else "upstream")


UNAVAILABLE = {
    "snapshot": "no camera lane on this gateway: snapshots come with the camera lane",
    "faces_delete": "no face access lane on this gateway: nothing to delete",
    "door_pulse": "no doors configured: add [[doors]] to the config",
}


class CommandRouter:
    def __init__(
        self,
        handlers: Mapping[str, Handler],
        allow: set[str],
        guard: ReplayGuard,
        clock: Clock,
        respond: Callable[[dict[str, Any]], None],
        max_per_minute: int = 120,
    ) -> None:
        self.handlers = dict(handlers)
        self.allow = set(allow)
        self.guard = guard
        self.clock = clock
        self.respond = respond
        self.max_per_minute = max_per_minute
        self._recent: deque[float] = deque()
        self.counts: dict[str, int] = {"received": 0, "ok": 0, "rejected": 0, "failed": 0, "flood_dropped": 0}
        self.reasons: dict[str, int] = {}
        self._bug_logged: set[str] = set()

    async def handle(self, payload: bytes, origin: str = MQTT) -> dict[str, Any] | None:
        """Run one command; returns the result body (also handed to `respond`), None if flood-dropped."""
        self.counts["received"] += 1
        if not self._admit():
            self.counts["flood_dropped"] += 1
            self._note("flood", f"more than {self.max_per_minute} commands a minute: dropping unanswered")
            return None
        cid: str | None = None
        name: str | None = None
        try:
            cmd = parse_command(payload)
            cid, name = cmd.id, cmd.command
            result = await self._run(cmd, origin)
            body = self._body(cid, name, origin, "ok", result=result)
        except Malformed as exc:
            body = self._body(exc.correlation_id, exc.command, origin, "rejected", exc.reason)
        except Rejected as exc:
            body = self._body(cid, name, origin, "rejected", str(exc))
        except Failed as exc:
            body = self._body(cid, name, origin, "failed", str(exc))
        except Exception as exc:
            if str(name) not in self._bug_logged:
                self._bug_logged.add(str(name))
                log.exception("command %s failed unexpectedly", name)
            body = self._body(cid, name, origin, "failed", f"internal error: {type(exc).__name__}: {exc}")
        self.counts[body["outcome"]] += 1
        if body["outcome"] != "ok":
            self._note(
                _reason_class(body["reason"]), f"command {name or '?'} {body['outcome']}: {body['reason']}"
            )
        else:
            log.info("command %s (%s) from %s: ok", name, cid, origin)
        self.respond(body)
        return body

    async def _run(self, cmd: Command, origin: str) -> dict[str, Any]:
        if origin != LOCAL and cmd.command not in self.allow:
            raise Rejected(f"not allowed: {cmd.command} is not in commands.allow of this gateway")
        stale = self.guard.check(cmd, self.clock.time_ms())
        if stale is not None:
            raise Rejected(stale)
        handler = self.handlers.get(cmd.command)
        if handler is None:
            raise Rejected(
                "unavailable: " + UNAVAILABLE.get(cmd.command, f"{cmd.command} is not supported here")
            )
        return await handler(cmd.args, CommandContext(cmd, origin))

    def _admit(self) -> bool:
        now = time.monotonic()
        while self._recent and now - self._recent[0] > 60:
            self._recent.popleft()
        if len(self._recent) >= self.max_per_minute:
            return False
        self._recent.append(now)
        return True

    def _note(self, reason: str, line: str) -> None:
        count = self.reasons.get(reason, 0) + 1
        self.reasons[reason] = count
        if count == 1:
            log.warning("%s (further ones of this kind are only counted)", line)

    def _body(
        self,
        cid: str | None,
        name: str | None,
        origin: str,
        outcome: str,
        reason: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"correlation_id": cid, "command": name, "origin": origin, "outcome": outcome}
        if reason is not None:
            body["reason"] = reason
        if result is not None:
            body["result"] = result
        return body

    def snapshot(self) -> dict[str, Any]:
        return {**self.counts, "refusals": dict(self.reasons)}


def _reason_class(reason: str) -> str:
    """The counting key of a refusal: its words before the first colon (`schema`, `replayed`, …)."""
    return reason.split(":", 1)[0].strip()[:40]
