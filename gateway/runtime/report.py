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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from gateway import __version__
from gateway.commands.router import CommandsReport
from gateway.core.devices import DeviceReport
from gateway.delivery.report import SparkplugLinkReport, UplinkReport
from gateway.lanes.alarms import AlarmReport, OpenAlarmsReport
from gateway.releases.report import ReleaseReport
from gateway.runtime.lane_summary import LanesSummary, summarise
from gateway.storage.outbox.report import OutboxReport

if TYPE_CHECKING:  # `lintel status` reads reports without importing the running parts
    from gateway.runtime.assembly import Core
    from gateway.runtime.lanes import Lanes
    from gateway.runtime.sources import Sources
    from gateway.runtime.supervisor import ComponentHealth


@dataclass(frozen=True, slots=True)
class ComponentReport:
    name: str
    state: str  # starting, running, retrying, failed, stopped, stalled, unavailable
    last_error: str | None
    restarts: int
    progress_age_s: float


@dataclass(frozen=True, slots=True)
class PipelineReport:
    accepted: int
    refused: int
    processor_errors: dict[str, int]


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
class ConfigReport:
    """The running config: `origin` is "local" (the installer's file) or "deployment vN"."""

    version: int | None  # the deployment's version; null on the local file alone
    origin: str
    sha256: str
    on_probation: bool  # a deployment not yet kept: it returns to the last-known-good if it fails
    deploy_key: str | None  # this gateway's X25519 public key: seal deployment secrets to it


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
    config: ConfigReport | None = None  # the running config's version and origin
    release: ReleaseReport | None = None  # running and previous version, the update (added Dec 2026)
    lanes: LanesSummary | None = None  # per lane what `lintel status` shows (added Dec 2026)


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
    config: ConfigReport | None = None  # the running config's version and origin
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
            self.config,
            self.release,
            summarise(_plain(self.lanes), self.unavailable),
        )


def gateway_report(
    core: Core,
    lanes: Lanes,
    sources: Sources,
    health: Mapping[str, ComponentHealth],
    state: str,
    config: ConfigReport | None = None,
) -> GatewayReport:
    """Everything a running gateway reports, in its types: its core parts, lanes, sources, the
    health of each supervised part, the daemon's state (starting, running, stopping, stopped) and
    the running config's version and origin."""
    clock, loaded = core.clock, core.loaded
    now = clock.monotonic()
    recovery = core.store.report
    return GatewayReport(
        pid=os.getpid(),
        state=state,
        gateway_id=loaded.config.gateway.id,
        site=loaded.config.gateway.site,
        version=__version__,
        boot_reason=core.boot_reason,
        outbox_recovery=OutboxRecovery.of(recovery.event_body()) if recovery.quarantined_to else None,
        uptime_s=round(now - core.started_mono, 1),
        config_sha256=loaded.sha256,
        components=tuple(ComponentReport(**h.as_dict(now)) for h in health.values()),
        outbox=core.writer.report(),
        uplink=core.uplink.report() if core.uplink else UplinkReport("disabled"),
        pipeline=PipelineReport(
            core.pipeline.accepted, core.pipeline.refused, dict(core.pipeline.processor_errors)
        ),
        alarms=tuple(core.book.listing(clock.time_ms())),
        commands=dataclasses.replace(core.router.report(), inbox=core.inbox.snapshot()),
        lanes=lanes.reports(),
        unavailable=dict(lanes.unavailable),
        written_ms=clock.time_ms(),
        devices=tuple(sources.device_reports()),
        sparkplug=core.sparkplug.report() if core.sparkplug is not None else None,
        config=config,
        release=ReleaseReport.of(__version__, core.release_state()),
    )


def encode(report: Any) -> str:
    """A report as compact JSON text, encoded once (status.json is written from this text: the
    indented encoder is pure Python and cost more than building the report)."""
    return json.dumps(_plain(report), default=str, separators=(",", ":"))


_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, the rest as is: what `dataclasses.asdict` gives a JSON
    encoder, without its deep copy of every leaf (written every status interval, so it matters)."""
    cls = type(value)
    if cls in (str, int, float, bool) or value is None:
        return value
    names = _FIELDS.get(cls)
    if names is None and dataclasses.is_dataclass(value):
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_json(report: Any) -> dict[str, Any]:
    """A report as the JSON object written to status.json / published (dataclasses → dicts)."""
    body: dict[str, Any] = json.loads(encode(report))
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
