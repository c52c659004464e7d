"""The command router: bytes in, one result out (or a counted drop), never an exception.

Order of checks, the first that fails answers `rejected` with a fixed `code` and a `reason`:
1. size and JSON (`malformed`);
2. who sent it (`Authority.authenticate`: target gateway and site, key, signature), which makes the
   sender: a verified key, `unauthenticated` (everything that did not verify, unsigned pings
   included) or `local` (the control socket, whose file permissions are its authorisation);
3. that sender's budget per minute (`rate_limited`; see `ratelimit.py`): a flood from one key or
   from unverified senders never spends another operator's budget;
4. the JSON Schema (`malformed`); 5. roles (`not_allowed`, `door_not_allowed`; not for `local`);
6. freshness and nonce (`expired`, `clock_skew`, `replayed`, `clock_unset`);
7. a handler for the command on this gateway (`unavailable`). A handler raises `Rejected` for a
   refusal it can state (code `refused`) and `Failed` when it acted and it went wrong (`failed`);
   any other exception is a bug, answered `internal_error`, logged with its traceback once per command.

Results name `by`: the verified key's id (`unsigned` for an accepted unsigned ping), or for `local`
the technician's name given to the CLI, else `local`. Refusals are counted by code (a fixed set) and
logged once per episode (`refusals.py`).

Without an `Authority` (`auth=None`) the router cannot check signatures: remote commands are then
judged by `allow` alone and audited `by: "upstream (unverified)"`. That mode exists only for a daemon
not yet wired with `CommandRouter.from_config`; it says so in a WARNING when built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.commands.auth import Authority, Identity
from gateway.commands.envelope import Command, decode, readable_ids, validate
from gateway.commands.ratelimit import UNAUTHENTICATED, Admission, SenderBudgets
from gateway.commands.refusals import Code, Refusal, RefusalLog
from gateway.commands.replay import ReplayGuard
from gateway.config.commands import CommandsSection
from gateway.core import Clock
from gateway.core.commands import Failed, Handler, Rejected
from gateway.storage.state import StateStore

log = logging.getLogger("lintel.commands")

LOCAL, MQTT = "local", "mqtt"
UNVERIFIED_BY = "upstream (unverified)"


@dataclass(frozen=True, slots=True)
class CommandsReport:
    received: int
    ok: int
    rejected: int
    failed: int
    dropped: int  # over a sender's budget, dropped unanswered
    signatures_checked: bool
    refusals: dict[str, int]  # by refusal code (a fixed set)
    per_key: dict[str, dict[str, int]]  # per operator key: outcomes


@dataclass(frozen=True, slots=True)
class CommandContext:
    command: Command
    origin: str
    by: str  # the audited author: verified key id, `unsigned`, or the local technician


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
        *,
        auth: Authority | None = None,
        quiet_s: float = 300.0,
    ) -> None:
        self.handlers = dict(handlers)
        self.allow = set(allow)  # consulted only without an Authority (which has its own)
        self.auth = auth
        self.guard = guard
        self.clock = clock
        self.respond = respond
        self.budgets = SenderBudgets(clock, max_per_minute)
        self.refusals = RefusalLog(clock, quiet_s)
        self.counts: dict[str, int] = {"received": 0, "ok": 0, "rejected": 0, "failed": 0, "dropped": 0}
        self.per_key: dict[str, dict[str, int]] = {}
        self._bug_logged: set[str] = set()
        if auth is None:
            log.warning("command signatures are NOT checked: this router was built without an Authority")

    @classmethod
    def from_config(
        cls,
        section: CommandsSection,
        gateway_id: str,
        site: str,
        handlers: Mapping[str, Handler],
        store: StateStore | None,
        clock: Clock,
        respond: Callable[[dict[str, Any]], None],
    ) -> CommandRouter:
        """The router for `[commands]` of gateway `gateway_id` at `site`, checking signatures."""
        guard = ReplayGuard(store, section.max_age_s, section.max_skew_s)
        auth = Authority.from_config(section, gateway_id, site)
        return cls(handlers, set(section.allow), guard, clock, respond, section.max_per_minute, auth=auth)

    @property
    def max_per_minute(self) -> int:
        return self.budgets.per_minute

    async def handle(self, payload: bytes, origin: str = MQTT) -> dict[str, Any] | None:
        """Run one command; returns the result body (also handed to `respond`), None if dropped."""
        self.counts["received"] += 1
        cid: str | None = None
        name: str | None = None
        who: Identity | None = None
        try:
            doc = decode(payload)
            cid, name = readable_ids(doc)
            who = self._identify(doc, origin)
        except Exception as exc:
            # Not verified: spend the budget every unverified sender shares.
            if isinstance(exc, Refusal):
                refusal = exc
            else:  # a bug in the checks themselves: refuse, never let it escape
                if "identify" not in self._bug_logged:
                    self._bug_logged.add("identify")
                    log.exception("checking a command's sender failed unexpectedly")
                refusal = Refusal(Code.INTERNAL_ERROR, f"checking the sender failed: {type(exc).__name__}")
            admission = self.budgets.take(UNAUTHENTICATED)
            if admission is not Admission.ADMIT:
                return self._limited(admission, cid, name, origin, None)
            return self._finish(self._refused(cid, name, origin, None, refusal))
        sender = LOCAL if origin == LOCAL else (who.key_id or UNAUTHENTICATED)
        admission = self.budgets.take(sender)
        if admission is not Admission.ADMIT:
            return self._limited(admission, cid, name, origin, who)
        return self._finish(await self._run(doc, cid, name, origin, who))

    def _identify(self, doc: dict[str, Any], origin: str) -> Identity:
        if origin == LOCAL:
            by = doc.get("by")
            return Identity(by if isinstance(by, str) and by else LOCAL, None)
        if self.auth is None:
            return Identity(UNVERIFIED_BY, None)
        return self.auth.authenticate(doc)

    async def _run(
        self, doc: dict[str, Any], cid: str | None, name: str | None, origin: str, who: Identity
    ) -> dict[str, Any]:
        try:
            cmd = validate(doc)
            if origin != LOCAL:
                self._authorize(who, cmd)
            stale = self.guard.check(cmd, self.clock.time_ms())
            if stale is not None:
                raise stale
            handler = self.handlers.get(cmd.command)
            if handler is None:
                detail = UNAVAILABLE.get(cmd.command, f"{cmd.command} is not supported here")
                raise Refusal(Code.UNAVAILABLE, detail)
        except Refusal as refusal:
            return self._refused(cid, name, origin, who, refusal)
        try:
            result = await handler(cmd.args, CommandContext(cmd, origin, who.by))
        except Rejected as exc:
            return self._body(cid, name, origin, who, "rejected", Code.HANDLER_REFUSED, str(exc))
        except Failed as exc:
            return self._body(cid, name, origin, who, "failed", Code.FAILED, str(exc))
        except Exception as exc:
            if cmd.command not in self._bug_logged:
                self._bug_logged.add(cmd.command)
                log.exception("command %s failed unexpectedly", cmd.command)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            return self._body(cid, name, origin, who, "failed", Code.INTERNAL_ERROR, reason)
        return self._body(cid, name, origin, who, "ok", result=result)

    def _authorize(self, who: Identity, cmd: Command) -> None:
        if self.auth is not None:
            self.auth.authorize(who, cmd)
            return
        if cmd.by is not None:
            raise Refusal(Code.MALFORMED, "by: a remote command's author is not a claim it makes; remove by")
        if cmd.command not in self.allow:
            raise Refusal(Code.NOT_ALLOWED, f"{cmd.command} is not in commands.allow of this gateway")

    def _limited(
        self, admission: Admission, cid: str | None, name: str | None, origin: str, who: Identity | None
    ) -> dict[str, Any] | None:
        sender = who.by if who is not None else UNAUTHENTICATED
        refusal = Refusal(
            Code.RATE_LIMITED,
            f"{sender} sent more than {self.max_per_minute} commands a minute; "
            "further ones are dropped unanswered until the budget refills",
        )
        if admission is Admission.REFUSE:
            return self._finish(self._refused(cid, name, origin, who, refusal))
        self.counts["dropped"] += 1
        self.refusals.note(Code.RATE_LIMITED, f"command dropped unanswered: {refusal.reason}")
        if who is not None and who.key_id is not None:
            self._count_key(who.key_id, "dropped")
        return None

    def _refused(
        self, cid: str | None, name: str | None, origin: str, who: Identity | None, refusal: Refusal
    ) -> dict[str, Any]:
        return self._body(cid, name, origin, who, "rejected", refusal.code, refusal.reason)

    def _finish(self, body: dict[str, Any]) -> dict[str, Any]:
        outcome = body["outcome"]
        self.counts[outcome] += 1
        key_id = body.get("by") if body.get("by") in self._operators() else None
        if key_id is not None:
            self._count_key(key_id, outcome)
        name, by = body["command"] or "?", body.get("by", "an unverified sender")
        if outcome == "ok":
            log.info("command %s (%s) from %s via %s: ok", name, body["correlation_id"], by, body["origin"])
        else:
            line = f"command {name} from {by} via {body['origin']} {outcome}: {body['reason']}"
            self.refusals.note(Code(body["code"]), line)
        self.respond(body)
        return body

    def _operators(self) -> dict[str, Any]:
        return self.auth.operators if self.auth is not None else {}

    def _count_key(self, key_id: str, what: str) -> None:
        row = self.per_key.setdefault(key_id, {"ok": 0, "rejected": 0, "failed": 0, "dropped": 0})
        row[what] += 1

    @staticmethod
    def _body(
        cid: str | None,
        name: str | None,
        origin: str,
        who: Identity | None,
        outcome: str,
        code: Code | None = None,
        reason: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"correlation_id": cid, "command": name, "origin": origin, "outcome": outcome}
        if who is not None:
            body["by"] = who.by
        if code is not None:
            body["code"] = code.value
        if reason is not None:
            body["reason"] = reason
        if result is not None:
            body["result"] = result
        return body

    def report(self) -> CommandsReport:
        c = self.counts
        return CommandsReport(
            c["received"],
            c["ok"],
            c["rejected"],
            c["failed"],
            c["dropped"],
            self.auth is not None,
            self.refusals.snapshot(),
            {k: dict(v) for k, v in sorted(self.per_key.items())},
        )
