"""The result of one check: a level, what was found, and the fix for a person on site."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Level(enum.IntEnum):
    OK = 0
    WARN = 1
    FAIL = 2

    @property
    def mark(self) -> str:
        return {Level.OK: "✓", Level.WARN: "⚠", Level.FAIL: "✗"}[self]

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    """`check` names what was looked at (`broker.tls`, `serial./dev/ttyUSB0`, `meter.meter-101`);
    `fix` is empty when the level is OK, and says what to do otherwise."""

    check: str
    level: Level
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "level": self.level.label, "detail": self.detail, "fix": self.fix}


def ok(check: str, detail: str) -> Finding:
    return Finding(check, Level.OK, detail)


def warn(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, Level.WARN, detail, fix)


def fail(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, Level.FAIL, detail, fix)


def worst(findings: list[Finding]) -> Level:
    return max((f.level for f in findings), default=Level.OK)
