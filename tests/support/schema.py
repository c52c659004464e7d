"""Validate published payloads against the JSON Schemas in docs/schema/v1."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schema" / "v1"


@cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMA_DIR / f"{name}.json").read_text()))


def validate(topic: str, payload: dict[str, Any]) -> None:
    """Raise if the payload does not match its schema, or the topic does not match the payload."""
    schema = payload.get("schema", "")
    assert schema.startswith("lintel.") and schema.endswith("/1"), f"unknown schema {schema!r} on {topic}"
    name = schema[len("lintel.") : -2]
    errors = sorted(validator(name).iter_errors(payload), key=str)
    assert not errors, f"{topic}: {errors[0].message} at {list(errors[0].path)}"
    parts = topic.split("/")
    assert parts[2] == payload["gateway_id"], topic
    kind = parts[3]
    if name == "telemetry":
        assert kind == "telemetry" and parts[4] == payload["source_id"]
    elif name == "state":
        assert kind == "state" and parts[4:] == [payload["source_id"], payload["point"]]
    elif name == "event":
        assert kind == ("alarm" if payload["severity"] == "alarm" else "event")
        assert parts[4:] == [payload["source_id"], payload["kind"]]
    elif name == "command_result":
        assert parts[3:] == ["command", "result"], topic
    else:
        assert kind == name, topic
