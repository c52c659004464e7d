"""Probe and echo: how the catch-up session learns that the shared group is receiving again.

The catch-up session (fleet/catchup.py) publishes a probe carrying a fresh random nonce on
`{prefix}/_fleet/probe`, a topic inside the workers' shared subscription (`{prefix}/#`). The worker
the broker hands it to answers on `_fleet/{prefix}/echo/{catchup_id}`, which only the catch-up
session subscribes to. The broker routes each message to every matching subscription at once and
queues a session's messages in that order, so when the catch-up session reads the echo of a probe
it sent on its current connection, every message after the echo in its stream was routed after the
probe was, and so also to the shared group.

Both are hostile input like any message: sizes bounded before parsing, ids and nonces checked by
pattern. A forged echo can only name a nonce it has seen; probes travel on the fleet's own topics,
which the broker's ACL keeps from the gateways (README, Fleet service).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

FLEET_LEVEL = "_fleet"  # no gateway has this site: gateway sites start with a letter or digit
MAX_PROBE_BYTES = 256
CATCHUP_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NONCE_RE = re.compile(r"^[0-9a-f]{32}$")


def probe_topic(prefix: str) -> str:
    return f"{prefix}/{FLEET_LEVEL}/probe"


def echo_topic(prefix: str, catchup_id: str) -> str:
    return f"{FLEET_LEVEL}/{prefix}/echo/{catchup_id}"


def new_nonce() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Probe:
    catchup_id: str
    nonce: str


def probe_payload(catchup_id: str, nonce: str) -> bytes:
    return json.dumps({"catchup_id": catchup_id, "nonce": nonce}).encode()


def parse_probe(payload: bytes) -> Probe | None:
    """The probe in a payload on the probe topic, or None if it is not one."""
    if len(payload) > MAX_PROBE_BYTES:
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    cid, nonce = doc.get("catchup_id"), doc.get("nonce")
    if not isinstance(cid, str) or not isinstance(nonce, str):
        return None
    if not CATCHUP_ID_RE.match(cid) or not NONCE_RE.match(nonce):
        return None
    return Probe(cid, nonce)


def parse_echo(payload: bytes) -> str | None:
    """The nonce an echo carries, or None."""
    if len(payload) > MAX_PROBE_BYTES:
        return None
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if NONCE_RE.match(text) else None


def answer(client: Any, prefix: str, payload: bytes) -> bool:
    """A worker's answer to a probe it received (`client` a connected paho client); False if the
    payload is not a probe."""
    found = parse_probe(payload)
    if found is None:
        return False
    client.publish(echo_topic(prefix, found.catchup_id), found.nonce.encode(), qos=1)
    return True
