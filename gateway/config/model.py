"""The config schema. Key names carry units (`_s`, `_ms`, `_mb`, `_h`, `_msg_s`).

Validators here are pure: nothing opens a file or a device. File checks (secrets, certificates)
happen in `loader.check_files` after validation, so `check-config` and the daemon report both kinds
of problem in one list and in one format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gateway.config import driver_registry as registry
from gateway.config.commands import CommandsSection
from gateway.config.references import check_references
from gateway.config.renamed import move_renamed
from gateway.config.update import UpdateSection
from gateway.core.config_base import (
    Identifier,
    SourceConfigBase,
    StrictModel,
    check_file_name,
    check_url,
    check_zone,
    custom_error,
    one_password_source,
)
from gateway.core.errors import ConfigProblem
from gateway.inference.config import InferenceSection
from gateway.lanes.care.config import CareSection
from gateway.lanes.doors import DoorConfig
from gateway.lanes.doors.config import DOOR_STOP_BUDGET_S
from gateway.lanes.faces.config import FaceAccessConfig, FacesSection
from gateway.lanes.fire_lanes.config import FireLaneConfig, VisionSection
from gateway.lanes.rules.config import Rule
from gateway.upstream.bridges.config import BridgesSection

TOPIC_SEGMENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def not_below(high: float, high_key: str, low: float, low_key: str) -> None:
    """A longest delay (`high_key`) must not be below its first delay (`low_key`)."""
    if high < low:
        raise custom_error(
            f"{high_key} is below {low_key}",
            f"a number >= {low_key} ({low:g})",
            key=high_key,
            got=f"{high:g}",
        )


class GatewaySection(StrictModel):
    id: Identifier = Field(description="This gateway's id: unique per site, used in topics and payloads.")
    site: Annotated[str, Field(pattern=TOPIC_SEGMENT)] = Field(description="Site (community) id.")
    state_dir: str = Field("/var/lib/lintel", description="Where the outbox database lives (on disk).")
    runtime_dir: str = Field(
        "/run/lintel", description="Where the status file lives (tmpfs: rewritten often, spares the SD card)."
    )
    timezone: str | None = Field(
        None,
        description="The building's IANA time zone, e.g. \"Asia/Shanghai\": care's day and night, fire-lane "
        "exemptions, face access hours (default: the system's).",
    )

    _zone = field_validator("timezone")(check_zone)


class ClassLimits(StrictModel):
    max_mb: float | None = Field(
        None, gt=0, description="Bytes this class may hold in the outbox, in MiB (none: only outbox.max_mb)."
    )
    max_age_h: float = Field(gt=0, description="Older messages of this class are dropped, in hours.")


ClassName = Literal["telemetry", "state", "event", "alarm"]


def _default_classes() -> dict[ClassName, ClassLimits]:
    return {
        "telemetry": ClassLimits(max_mb=128, max_age_h=24 * 7),
        "state": ClassLimits(max_mb=32, max_age_h=24 * 14),
        "event": ClassLimits(max_mb=64, max_age_h=24 * 30),
        "alarm": ClassLimits(max_mb=None, max_age_h=24 * 90),
    }


class OutboxSection(StrictModel):
    path: str = Field("outbox.db", description="SQLite file, relative to gateway.state_dir.")
    commit_window_ms: int = Field(250, ge=1, le=5000, description="Longest wait before a group commit.")
    max_mb: float = Field(256, gt=0, description="Total outbox size cap across classes, in MiB.")
    min_free_disk_mb: float = Field(64, ge=0, description="Free space kept on the disk (the floor).")
    max_pending_records: int = Field(
        100_000, ge=100, description="Records waiting for the next commit before telemetry is refused."
    )
    batch_max_readings: int = Field(
        500, ge=1, le=10_000, description="Telemetry readings per message (one source per message)."
    )
    classes: dict[ClassName, ClassLimits] = Field(
        default_factory=_default_classes, description="Caps per priority class."
    )

    @field_validator("classes", mode="before")
    @classmethod
    def _merge_defaults(cls, value: Any) -> Any:
        # A partial [outbox.classes.telemetry] table overrides only that class.
        if isinstance(value, dict):
            merged: dict[str, Any] = {k: v.model_dump() for k, v in _default_classes().items()}
            merged.update(value)
            return merged
        return value

    @field_validator("classes")
    @classmethod
    def _alarms_have_no_byte_cap(cls, value: dict[str, ClassLimits]) -> dict[str, ClassLimits]:
        if value["alarm"].max_mb is not None:
            raise custom_error(
                "alarms have no byte cap: they are kept until the disk floor",
                "no max_mb in [outbox.classes.alarm] (only max_age_h)",
            )
        return value


# The files [mqtt] names, and what each must be (the validator and the loader's file check say it).
MQTT_FILES = {
    "password_file": "a readable file holding the MQTT password",
    "ca_file": "a readable PEM file with the CA that signed the broker's certificate",
    "cert_file": "a readable PEM file with this gateway's client certificate",
    "key_file": "a readable PEM file with this gateway's private key",
}


class MqttSection(StrictModel):
    url: str = Field(description="mqtt://host[:port] or mqtts://host[:port] (TLS).")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    client_id: str | None = Field(None, description="Defaults to lintel-<site>-<gateway id>.")
    username: str | None = None
    password_file: str | None = Field(None, description="File holding the password (one line).")
    password_secret: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="Name of a deployed secret holding the password (instead of password_file).",
    )
    ca_file: str | None = Field(None, description="CA bundle to verify the broker (mqtts).")
    cert_file: str | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    key_file: str | None = Field(None, description="Client private key (PEM) for mutual TLS.")
    topic_prefix: Annotated[str, Field(pattern=TOPIC_SEGMENT)] = "lintel"
    keepalive_s: int = Field(30, ge=5, le=3600)
    qos: Literal[1] = Field(1, description="Only QoS 1 gives the delivery contract.")
    inflight_max: int = Field(100, ge=1, le=65_535, description="Messages awaiting PUBACK at once.")
    ack_timeout_s: float = Field(30, gt=0, description="No PUBACK within this -> reconnect, resend.")
    drain_rate_msg_s: float = Field(
        1000, ge=0, description="Backlog messages per second after an outage (0 = no limit)."
    )
    reconnect_initial_s: float = Field(1, gt=0, description="First reconnect delay (doubles, full jitter).")
    reconnect_max_s: float = Field(
        5, gt=0, le=3600, description="Longest reconnect delay: a returning broker is reached within it."
    )
    stable_after_s: float = Field(30, ge=0, description="Backoff resets once a connection lasts this.")
    stats_interval_s: float = Field(60, gt=0, description="Seconds between gateway stats messages.")
    max_packet_kb: float = Field(
        320, ge=16, le=262_144, description="Largest packet taken from the broker (commands), in KiB."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        return check_url(
            url,
            "broker URL",
            ("mqtt", "mqtts"),
            "mqtt://host[:port] or mqtts://host[:port]",
            "the URL without user:password@, and mqtt.username plus mqtt.password_file",
        )

    @field_validator(*MQTT_FILES)
    @classmethod
    def _check_file_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        key = str(info.field_name)
        return check_file_name(value, MQTT_FILES[key], key)

    @model_validator(mode="after")
    def _check_pairs(self) -> MqttSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise custom_error(
                "cert_file and key_file go together", "both mqtt.cert_file and mqtt.key_file, or neither"
            )
        # A key present is given (an empty file name never gets here: _check_file_name refuses it),
        # as one_password_source and the relays' configs say.
        if self.password_file is not None and not self.username:
            raise custom_error("password_file needs a username", "mqtt.username set as well")
        if self.password_secret is not None and not self.username:
            raise custom_error("password_secret needs a username", "mqtt.username set as well")
        one_password_source(self.password_file, self.password_secret)
        not_below(self.reconnect_max_s, "reconnect_max_s", self.reconnect_initial_s, "reconnect_initial_s")
        return self

    @property
    def tls(self) -> bool:
        return self.url.startswith("mqtts://")


class RuntimeSection(StrictModel):
    shutdown_timeout_s: float = Field(10, gt=0, le=300, description="Total budget for a graceful stop.")
    restart_budget: int = Field(10, ge=1, description="Restarts allowed per component per window.")
    restart_window_s: float = Field(600, gt=0)
    restart_initial_s: float = Field(1, gt=0, description="First restart delay (doubles, full jitter).")
    restart_max_s: float = Field(60, gt=0, description="Longest restart delay.")
    stall_after_s: float = Field(
        120, gt=0, description="A component without progress this long stops the systemd watchdog."
    )
    status_interval_s: float = Field(
        5, gt=0, description="How often the status file (lintel status, the dashboard) is rewritten."
    )

    @model_validator(mode="after")
    def _check_restart_bounds(self) -> RuntimeSection:
        not_below(self.restart_max_s, "restart_max_s", self.restart_initial_s, "restart_initial_s")
        return self


class DeploySection(StrictModel):
    probation_s: float = Field(
        30,
        ge=0.5,
        le=3600,
        description="After a deployment: the broker must be reached and no component fail within this, "
        "or the last config that worked comes back.",
    )


class LogSection(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"


def _source_union() -> Any:
    classes = registry.config_classes()
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[tuple(classes)], Field(discriminator="type")]  # noqa: UP007


if TYPE_CHECKING:
    SourceConfig = SourceConfigBase
else:
    SourceConfig = _source_union()


class GatewayConfig(StrictModel):
    gateway: GatewaySection
    outbox: OutboxSection = Field(default_factory=OutboxSection)
    mqtt: MqttSection | None = None
    runtime: RuntimeSection = Field(default_factory=RuntimeSection)
    log: LogSection = Field(default_factory=LogSection)
    deploy: DeploySection = Field(default_factory=DeploySection)
    sources: list[SourceConfig] = Field(default_factory=list)
    care: CareSection | None = None
    rules: list[Rule] = Field(default_factory=list)
    doors: list[DoorConfig] = Field(default_factory=list)
    inference: InferenceSection = Field(default_factory=InferenceSection)
    vision: VisionSection = Field(default_factory=VisionSection)
    fire_lanes: list[FireLaneConfig] = Field(default_factory=list)
    faces: FacesSection = Field(default_factory=FacesSection)
    face_access: list[FaceAccessConfig] = Field(default_factory=list)
    commands: CommandsSection = Field(default_factory=CommandsSection)
    bridges: BridgesSection = Field(default_factory=BridgesSection)
    update: UpdateSection = Field(default_factory=UpdateSection)
    _renamed: list[ConfigProblem] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _moved_keys(cls, data: Any, handler: Any) -> GatewayConfig:
        """Old keys read at their new place (gateway.config.renamed); `renamed` says which."""
        renamed: list[ConfigProblem] = []
        if isinstance(data, dict):
            data, renamed = move_renamed(data)
        config: GatewayConfig = handler(data)
        config._renamed = renamed
        return config

    @property
    def renamed(self) -> list[ConfigProblem]:
        """A warning per key still written at its old place (check-config, run and doctor say it)."""
        return list(self._renamed)

    @model_validator(mode="after")
    def _unique_source_ids(self) -> GatewayConfig:
        seen: dict[str, str] = {}
        for index, source in enumerate(self.sources):
            for key, device_id in source.device_ids():
                path = f"sources[{index}].{key}"
                if device_id in seen:
                    raise PydanticCustomError(
                        "lintel_at",
                        "duplicate source id",
                        {
                            "path": path,
                            "got": f'"{device_id}"',
                            "expected": f"an id not already used by {seen[device_id]}",
                        },
                    )
                seen[device_id] = path
        check_references(self, self.sources, self.commands)  # what the lanes and commands name
        return self

    @model_validator(mode="after")
    def _doors_stop_fits(self) -> GatewayConfig:
        """A door's switch-off at stop is never cut short (it takes up to DOOR_STOP_BUDGET_S, beside
        the other lanes' stops): the whole stop must hold it and leave the stages after it (sources,
        commit, in-flight messages, close) as much again."""
        need = 2 * DOOR_STOP_BUDGET_S
        if self.doors and self.runtime.shutdown_timeout_s < need:
            raise PydanticCustomError(
                "lintel_at",
                "too short for the doors' switch-off at stop",
                {
                    "path": "runtime.shutdown_timeout_s",
                    "got": f"{self.runtime.shutdown_timeout_s:g}",
                    "expected": f"at least {need:g} where [[doors]] are configured (a relay gets up to "
                    f"{DOOR_STOP_BUDGET_S:g} s to switch off, the rest of the stop as much again), "
                    "e.g. the default 10",
                },
            )
        return self
