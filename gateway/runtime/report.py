"""Typed reports: what `status.json`, `lintel status` and the upstream `stats` message say.

Every part reports a frozen dataclass; this module assembles them. The JSON written to disk and
upstream is `to_json(report)`; the `stats` JSON Schema in docs/ is generated from `StatsReport`
(`python -m gateway.runtime.report > docs/schema/v1/stats.json`) and a test fails on drift, so an
internal rename cannot silently change the protocol. Counters of the outbox and uplink threads
cross into these types here, at one boundary.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from gateway import __version__
from gateway.core.devices import DeviceReport
from gateway.delivery.report import SparkplugLinkReport, UplinkReport
from gateway.releases.report import ReleaseReport

if TYPE_CHECKING:
    from gateway.runtime.daemon import Daemon


@dataclass(frozen=True, slots=True)
class ComponentReport:
    name: str
    state: str  # starting, running, retrying, failed, stopped, stalled, unavailable
    last_error: str | None
    restarts: int
    progress_age_s: float


@dataclass(frozen=True, slots=True)
class ClassCounts:
    telemetry: int
    state: int
    event: int
    alarm: int


@dataclass(frozen=True, slots=True)
class OutboxReport:
    last_seq: int
    rows: ClassCounts
    bytes: ClassCounts
    pending_records: int
    accepted_records: int
    commits: int
    last_commit_ms: int | None
    dropped: dict[str, int]  # "<class>.<reason>": records, counted once each
    at_disk_floor: bool
    disk_full: bool
    held_in_memory: int  # alarms/events kept in memory while the disk is full
    degraded: str | None  # why the outbox is not fully working (None: it is)
    corrupt_rows: int  # rows whose checksum failed: never published
    last_error: str | None

    @classmethod
    def of(cls, snap: dict[str, Any]) -> OutboxReport:
        return cls(
            snap["last_seq"],
            ClassCounts(**snap["rows"]),
            ClassCounts(**snap["bytes"]),
            snap["pending_records"],
            snap["accepted_records"],
            snap["commits"],
            snap["last_commit_ms"],
            dict(snap["dropped"]),
            bool(snap["at_disk_floor"]),
            bool(snap["disk_full"]),
            int(snap["held_in_memory"]),
            snap["degraded"],
            int(snap["corrupt_rows"]),
            snap["last_error"],
        )


@dataclass(frozen=True, slots=True)
class PipelineReport:
    accepted: int
    refused: int
    processor_errors: dict[str, int]


@dataclass(frozen=True, slots=True)
class AlarmReport:
    alarm_id: str
    kind: str
    source_id: str
    opened_ms: int
    open_s: int
    notified: int
    acked: bool
    acked_by: str | None


@dataclass(frozen=True, slots=True)
class OpenAlarmsReport:
    """How many alarms are open now (for dashboards that read only `stats`): no ids, no sources."""

    count: int
    unacknowledged: int
    by_kind: dict[str, int]

    @classmethod
    def of(cls, alarms: tuple[AlarmReport, ...]) -> OpenAlarmsReport:
        by_kind: dict[str, int] = {}
        for alarm in alarms:
            by_kind[alarm.kind] = by_kind.get(alarm.kind, 0) + 1
        return cls(len(alarms), sum(not a.acked for a in alarms), dict(sorted(by_kind.items())))


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

    @classmethod
    def of(cls, snap: dict[str, Any]) -> CommandsReport:
        return cls(
            snap["received"],
            snap["ok"],
            snap["rejected"],
            snap["failed"],
            snap["dropped"],
            bool(snap["signatures_checked"]),
            dict(snap["refusals"]),
            {k: dict(v) for k, v in snap["per_key"].items()},
        )


@dataclass(frozen=True, slots=True)
class OutboxRecovery:
    """What start-up found in a corrupt outbox and salvaged (the `outbox_replaced` event's body)."""

    moved_to: str
    reason: str
    rows_recovered: int | None = None
    rows_lost: int | None = None  # None where the counts were unreadable too
    seq_ranges_lost: dict[str, list[list[int]]] | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> OutboxRecovery:
        return cls(
            str(body["moved_to"]),
            str(body["reason"]),
            body.get("rows_recovered"),
            body.get("rows_lost"),
            body.get("seq_ranges_lost"),
        )


@dataclass(frozen=True, slots=True)
class StatsReport:
    """The body of the upstream `stats` message (besides schema, gateway_id, seq, ts_ms)."""

    uptime_s: float
    boot_reason: str
    components: tuple[ComponentReport, ...]
    outbox: OutboxReport
    uplink: UplinkReport
    pipeline: PipelineReport
    devices: tuple[DeviceReport, ...]  # per meter, sensor and camera: online, counters, latest values
    open_alarms: OpenAlarmsReport
    sparkplug: SparkplugLinkReport | None  # null while the Sparkplug bridge is off
    release: ReleaseReport | None = None  # running and previous version, the update (added Dec 2026)


@dataclass(frozen=True, slots=True)
class GatewayReport:
    """`status.json`: everything `lintel status` shows. `lanes` holds each lane's own report,
    keyed by lane name; `unavailable` the lanes that are configured but not running, and why."""

    pid: int
    state: str
    gateway_id: str
    site: str
    version: str
    boot_reason: str
    outbox_recovery: OutboxRecovery | None
    uptime_s: float
    config_sha256: str
    components: tuple[ComponentReport, ...]
    outbox: OutboxReport
    uplink: UplinkReport
    pipeline: PipelineReport
    alarms: tuple[AlarmReport, ...]
    commands: CommandsReport
    lanes: dict[str, Any]
    unavailable: dict[str, str]
    written_ms: int
    devices: tuple[DeviceReport, ...] = ()  # default: a status.json written before devices existed
    sparkplug: SparkplugLinkReport | None = None  # the Sparkplug B link, when that bridge is on
    release: ReleaseReport | None = None  # running and previous version, the staged update if any

    def stats(self) -> StatsReport:
        return StatsReport(
            self.uptime_s,
            self.boot_reason,
            self.components,
            self.outbox,
            self.uplink,
            self.pipeline,
            self.devices,
            OpenAlarmsReport.of(self.alarms),
            self.sparkplug,
            self.release,
        )


def gateway_report(daemon: Daemon) -> GatewayReport:
    """Everything a running daemon reports, in its types."""
    core, now = daemon.core, daemon.clock.monotonic()
    recovery = core.store.report
    book = core.book.listing(daemon.clock.time_ms())
    return GatewayReport(
        pid=os.getpid(),
        state=daemon.state,
        gateway_id=daemon.loaded.config.gateway.id,
        site=daemon.loaded.config.gateway.site,
        version=__version__,
        boot_reason=core.boot_reason,
        outbox_recovery=OutboxRecovery.of(recovery.event_body()) if recovery.quarantined_to else None,
        uptime_s=round(now - core.started_mono, 1),
        config_sha256=daemon.loaded.sha256,
        components=tuple(ComponentReport(**h.as_dict(now)) for h in daemon.health.values()),
        outbox=OutboxReport.of(core.writer.snapshot()),
        uplink=core.uplink.report() if core.uplink else UplinkReport("disabled"),
        pipeline=PipelineReport(
            core.pipeline.accepted, core.pipeline.refused, dict(core.pipeline.processor_errors)
        ),
        alarms=tuple(AlarmReport(**{k: a[k] for k in AlarmReport.__dataclass_fields__}) for a in book),
        commands=CommandsReport.of(core.router.snapshot()),
        lanes=daemon.lanes.reports(),
        unavailable=dict(daemon.lanes.unavailable),
        written_ms=daemon.clock.time_ms(),
        devices=tuple(daemon.sources.device_reports()),
        sparkplug=core.sparkplug.report() if core.sparkplug is not None else None,
        release=ReleaseReport.of(__version__, daemon.release.state),
    )


def to_json(report: Any) -> dict[str, Any]:
    """A report as the JSON object written to status.json / published (dataclasses → dicts)."""
    body: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(report), default=str))
    return body


def read_report(body: dict[str, Any]) -> GatewayReport:
    """status.json back into its types (lane reports stay JSON: their lane module renders them)."""
    return TypeAdapter(GatewayReport).validate_python(body)


ENVELOPE = {
    "schema": {"const": "lintel.stats/1"},
    "gateway_id": {
        "type": "string",
        "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$",
        "description": "The gateway that published the message.",
    },
    "seq": {
        "type": "integer",
        "minimum": 0,
        "description": "This message's sequence number, increasing per gateway across restarts.",
    },
    "ts_ms": {"type": "integer", "minimum": 0, "description": "Milliseconds since the Unix epoch (UTC)."},
}


def stats_schema() -> dict[str, Any]:
    """The JSON Schema of the `stats` message, generated from `StatsReport` (closed objects)."""
    schema = TypeAdapter(StatsReport).json_schema(ref_template="#/$defs/{model}")
    for definition in [schema, *schema.get("$defs", {}).values()]:
        if definition.get("type") == "object" and "properties" in definition:
            definition["additionalProperties"] = False
    schema["properties"] = {**ENVELOPE, **schema["properties"]}
    schema["required"] = [*ENVELOPE, *schema.get("required", [])]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://lintel.invalid/schema/v1/stats.json",
        "title": "Gateway statistics",
        "description": "Periodic health of the gateway. Topic {prefix}/{site}/{gateway}/stats. "
        "Generated from gateway.runtime.report.StatsReport: do not edit by hand.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


if __name__ == "__main__":
    print(json.dumps(stats_schema(), indent=2))
