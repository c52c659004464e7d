"""The error tree. Errors are translated once, at the boundary, into three kinds:
config (fix the file), transient (retry with backoff) and permanent (report, do not retry)."""

from __future__ import annotations

from dataclasses import dataclass


class LintelError(Exception):
    """Base of every error Lintel raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file, rendered as `path.to.key: what (got X); expected Y`."""

    path: str
    message: str
    got: str | None = None
    expected: str | None = None

    def __str__(self) -> str:
        text = f"{self.path or '(top level)'}: {self.message}"
        if self.got is not None:
            text += f" (got {self.got})"
        if self.expected is not None:
            text += f"; expected {self.expected}"
        return text


class ConfigError(LintelError):
    """The config cannot be used. Carries every problem found, not only the first."""

    def __init__(self, problems: list[ConfigProblem], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(str(p) for p in problems))


class SourceUnavailable(LintelError):
    """A transient device fault (offline, bus timeout): the supervisor backs off and retries."""


class PermanentError(LintelError):
    """A fault retrying cannot fix (bad credentials rejected by design, unsupported device)."""
