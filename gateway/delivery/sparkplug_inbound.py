"""What the Sparkplug link accepts from the broker, parsed as hostile input: NCMD and STATE.

The only command an edge node of ours acts on is the spec's one required command, NCMD
`Node Control/Rebirth` = true (by name, or by its NBIRTH alias). STATE is the 3.0 JSON
`{"online": bool, "timestamp": ms}` of the primary host. Sizes are bounded before anything is
parsed; anything else raises `BadInput` (the link counts it per kind and logs it once).
"""

from __future__ import annotations

import json

from google.protobuf.message import DecodeError

from gateway.upstream.bridges import sparkplug_pb as pb
from gateway.upstream.bridges.sparkplug import REBIRTH
from gateway.upstream.bridges.sparkplug_model import REBIRTH_ALIAS

MAX_COMMAND_BYTES = 64 * 1024  # an NCMD carries one boolean; anything this large is not ours to parse
MAX_STATE_BYTES = 1024


class BadInput(ValueError):
    pass


def rebirth_requested(payload: bytes) -> bool:
    """True for an NCMD asking for a rebirth, False for a well-formed NCMD that does not."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise BadInput(f"NCMD of {len(payload)} bytes (at most {MAX_COMMAND_BYTES})")
    try:
        metrics = pb.Payload.FromString(payload).metrics
    except (DecodeError, RecursionError) as exc:
        raise BadInput(f"NCMD is not a Sparkplug B payload ({exc})") from None
    for m in metrics:
        named = m.name == REBIRTH or (not m.HasField("name") and m.alias == REBIRTH_ALIAS)
        if named and m.WhichOneof("value") == "boolean_value" and m.boolean_value:
            return True
    return False


def host_state(payload: bytes) -> tuple[bool, int]:
    """(online, timestamp ms) of a primary host's STATE."""
    if len(payload) > MAX_STATE_BYTES:
        raise BadInput(f"STATE of {len(payload)} bytes (at most {MAX_STATE_BYTES})")
    try:
        body = json.loads(payload)
        online, ts = body["online"], body.get("timestamp", 0)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise BadInput(f"STATE is not the 3.0 JSON form ({type(exc).__name__}: {exc})") from None
    if not isinstance(online, bool) or isinstance(ts, bool) or not isinstance(ts, int):
        raise BadInput("STATE: online must be a boolean, timestamp an integer")
    return online, ts
