"""The stable kernel every driver and gateway layer builds on.

Imports only the standard library (and pydantic where config types are shared), never a device
library, never another gateway layer. Drivers may import from here and from nowhere else in gateway.
"""

from gateway.core.backoff import Backoff
from gateway.core.clock import Clock, ManualClock, SystemClock
from gateway.core.errors import ConfigError, ConfigProblem, LintelError, SourceUnavailable
from gateway.core.persist import KeyValueStore, MemoryStore
from gateway.core.records import Event, Klass, Reading, Record, Severity
from gateway.core.source import PollingSource, Source, SourceContext, next_deadline, raise_if_cancelled

__all__ = [
    "Backoff",
    "Clock",
    "ConfigError",
    "ConfigProblem",
    "Event",
    "KeyValueStore",
    "Klass",
    "LintelError",
    "ManualClock",
    "MemoryStore",
    "PollingSource",
    "Reading",
    "Record",
    "Severity",
    "Source",
    "SourceContext",
    "SourceUnavailable",
    "SystemClock",
    "next_deadline",
    "raise_if_cancelled",
]
