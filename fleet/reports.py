"""What a rollout reads from the gateways, in one place (the gateway side is being built now).

A deployment (a new config) or an update (a new release) goes to each gateway of a wave as a signed
command; the gateway answers with a command result (accepted or refused) and later reports how it
ended, as an event. This module names those events and says which attrs tie them to the rollout,
so adapting to the gateway's final wording is a change here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reports:
    command: str  # the command sent to each gateway
    target_arg: str | None  # the argument naming what is rolled out (None: the args carry it)
    success: frozenset[str]  # event kinds: the gateway runs the target after its probation
    failure: frozenset[str]  # event kinds: refused, or returned to the last-known-good
    target_attr: tuple[str, ...]  # attrs naming the target the report is about


# A deployment is today's `reload_config` with the whole config text (the gateway's own
# `expect_sha256` argument names the config it must be running *before*, so it is not the target);
# the target is the new text's sha256, which `config_reloaded` reports as `config_sha256`.
DEPLOY = Reports(
    command="reload_config",
    target_arg=None,
    success=frozenset({"config_applied", "config_reloaded"}),
    failure=frozenset({"config_rejected", "config_rolled_back"}),
    target_attr=("config_sha256", "sha256"),
)
UPDATE = Reports(
    command="update",
    target_arg="version",
    success=frozenset({"updated"}),
    failure=frozenset({"update_rolled_back", "update_failed"}),
    target_attr=("version", "to_version"),
)
BY_KIND = {"deploy": DEPLOY, "update": UPDATE}
REPORT_KINDS = frozenset().union(*(r.success | r.failure for r in BY_KIND.values()))


def verdict(
    kind: str, target: str, command_id: str | None, event_kind: str, attrs: dict[str, Any]
) -> str | None:
    """`succeeded`, `rolled_back` or None (not about this rollout) for one gateway event."""
    reports = BY_KIND[kind]
    if event_kind not in reports.success | reports.failure:
        return None
    same_request = command_id is not None and attrs.get("correlation_id") == command_id
    named = [attrs.get(a) for a in reports.target_attr if attrs.get(a) is not None]
    # a report that names its request or target must name ours; a bare report (no attrs to tell)
    # counts for the rollout the gateway is in
    if not same_request and named and target not in named:
        return None
    return "succeeded" if event_kind in reports.success else "rolled_back"
