"""Who sent a command, and whether that sender may issue it: signatures and roles.

`Authority.authenticate` runs on the decoded envelope before the schema, since it is cheaper and
stops unsigned junk early: the envelope must name this gateway (`gateway_id`, `site`), and carry a
`key_id` of a configured operator key and a `sig` that verifies over the canonical envelope (see
`canonical.py`). The only unsigned command that can pass is one listed in `[commands] unsigned`
(`ping` at most). `authorize` runs after the schema: the command must be in the gateway's
`[commands] allow` and in the key's own `allow`, and a door-scoped command must name one of the
key's doors. The identity it returns is what results and the audit trail call `by`: the verified
key's id, never a name taken from the payload.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.commands.canonical import SIG_FIELD, canonical_bytes
from gateway.commands.envelope import Command
from gateway.commands.refusals import Code, Refusal
from gateway.config.commands import ALL_DOORS, DOOR_SCOPED, CommandsSection, decode_public_key

UNSIGNED_BY = "unsigned"
_SHOWABLE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _shown(value: Any) -> str:
    """A value from a hostile envelope as it may appear in a reason or a log line."""
    if isinstance(value, str) and _SHOWABLE.match(value):
        return f'"{value}"'
    if value is None:
        return "none"
    return f"a {type(value).__name__} that is not an id"


@dataclass(frozen=True, slots=True)
class Operator:
    id: str
    key: Ed25519PublicKey
    allow: frozenset[str]
    doors: frozenset[str]  # door ids, or ALL_DOORS


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a command is from, as audited: `by` is the key id (or `unsigned`), `key_id` None if unsigned."""

    by: str
    key_id: str | None


class Authority:
    def __init__(
        self,
        gateway_id: str,
        site: str,
        operators: Iterable[Operator],
        allow: Iterable[str],
        unsigned: Iterable[str] = (),
    ) -> None:
        self.gateway_id = gateway_id
        self.site = site
        self.operators = {op.id: op for op in operators}
        self.allow = frozenset(allow)
        self.unsigned = frozenset(unsigned)

    @classmethod
    def from_config(cls, section: CommandsSection, gateway_id: str, site: str) -> Authority:
        """The authority for `[commands]` of the gateway `gateway_id` at `site` (a validated config)."""
        operators = [
            Operator(
                op.id,
                Ed25519PublicKey.from_public_bytes(decode_public_key(op.public_key)),
                frozenset(op.allow),
                frozenset(op.doors),
            )
            for op in section.operators
        ]
        return cls(gateway_id, site, operators, section.allow, section.unsigned)

    def authenticate(self, doc: dict[str, Any]) -> Identity:
        """The verified sender of a decoded envelope; `Refusal` (code and why) if there is none."""
        gateway_id, site = doc.get("gateway_id"), doc.get("site")
        if gateway_id is None or site is None:
            raise Refusal(Code.WRONG_GATEWAY, "no target: gateway_id and site are required")
        if gateway_id != self.gateway_id or site != self.site:
            raise Refusal(
                Code.WRONG_GATEWAY,
                f"addressed to gateway {_shown(gateway_id)} at site {_shown(site)}; "
                f'this is "{self.gateway_id}" at "{self.site}"',
            )
        key_id, sig = doc.get("key_id"), doc.get(SIG_FIELD)
        if key_id is None and sig is None:
            command = doc.get("command")
            if isinstance(command, str) and command in self.unsigned:
                return Identity(UNSIGNED_BY, None)
            accepted = ", ".join(sorted(self.unsigned)) or "none"
            raise Refusal(
                Code.UNSIGNED,
                f"no key_id and sig: sign it with an operator key (unsigned commands accepted: {accepted})",
            )
        op = self.operators.get(key_id) if isinstance(key_id, str) else None
        if op is None:
            raise Refusal(Code.UNKNOWN_KEY, f"key_id {_shown(key_id)} is not among [[commands.operators]]")
        try:
            signature = base64.b64decode(sig, validate=True) if isinstance(sig, str) else b""
        except (binascii.Error, ValueError):
            signature = b""
        if len(signature) != 64:
            raise Refusal(Code.BAD_SIGNATURE, "sig is not the base64 of a 64-byte Ed25519 signature")
        try:
            signed = canonical_bytes(doc)
        except ValueError as exc:
            raise Refusal(Code.MALFORMED, f"cannot be put in canonical form: {exc}") from None
        try:
            op.key.verify(signature, signed)
        except InvalidSignature:
            raise Refusal(
                Code.BAD_SIGNATURE,
                f'does not verify with key "{op.id}": changed after signing, or signed with another key',
            ) from None
        return Identity(op.id, op.id)

    def authorize(self, who: Identity, cmd: Command) -> None:
        """Raise `Refusal` unless `who` may issue `cmd` (validated) on this gateway."""
        if cmd.by is not None:
            raise Refusal(
                Code.MALFORMED, "by: a remote command's author is its signing key (key_id); remove by"
            )
        if cmd.command not in self.allow:
            raise Refusal(Code.NOT_ALLOWED, f"{cmd.command} is not in commands.allow of this gateway")
        if who.key_id is None:
            if cmd.command not in self.unsigned:
                raise Refusal(Code.UNSIGNED, f"{cmd.command} must be signed")
            return
        op = self.operators[who.key_id]
        if cmd.command not in op.allow:
            raise Refusal(
                Code.NOT_ALLOWED,
                f'key "{op.id}" may not issue {cmd.command} (it may: {", ".join(sorted(op.allow))})',
            )
        arg = DOOR_SCOPED.get(cmd.command)
        if arg is not None and ALL_DOORS not in op.doors and cmd.args.get(arg) not in op.doors:
            raise Refusal(
                Code.DOOR_NOT_ALLOWED,
                f'key "{op.id}" may not {cmd.command} door {_shown(cmd.args.get(arg))} '
                f"(its doors: {', '.join(sorted(op.doors))})",
            )
