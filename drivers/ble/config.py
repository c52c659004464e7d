"""Config of the `ble` source type: one Bluetooth adapter and the sensors it listens to.

    [[sources]]
    type = "ble"
    id = "ble-hall"
    adapter = "hci0"

    [[sources.sensors]]
    id = "door-back"
    address = "E4:AA:EC:81:21:AE"
    model = "MCCGQ02HL"
    bindkey_file = "/etc/lintel/keys/door-back.key"

Sensor ids are the source ids of their records and are unique across the whole config. The
bindkey is 32 hex digits, written inline (`bindkey`) or, better, kept in a file readable only by
the service (`bindkey_file`, an absolute path, checked when the config is loaded).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from drivers.ble.replay import RestartPolicy
from gateway.core.config_base import Identifier, SourceConfigBase, StrictModel, custom_error
from gateway.core.errors import ConfigProblem

_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")
_KEY = re.compile(r"^[0-9a-fA-F]{32}$")
KEY_EXPECTED = "32 hex digits (the 16-byte bindkey, e.g. from the Xiaomi cloud or the Shelly app)"

# Models the simulator and the installer tools know by name; any other string is accepted.
KNOWN_MODELS = {
    "SBDW-002C": "Shelly BLU Door/Window (BTHome v2)",
    "BTHOME": "any BTHome v2 sensor",
    "MCCGQ02HL": "Xiaomi Door/Window Sensor 2 (MiBeacon v5, encrypted)",
    "CGH1": "Qingping Door/Window Sensor (Qingping format)",
}


def parse_key(text: str) -> bytes:
    """A bindkey as written (hex, surrounding whitespace ignored). Raises ValueError."""
    text = text.strip()
    if not _KEY.match(text):
        raise ValueError(f"not a bindkey: expected {KEY_EXPECTED}")
    return bytes.fromhex(text)


class SensorConfig(StrictModel):
    id: Identifier = Field(description="Source id of this sensor's records; unique in the config.")
    address: str = Field(
        description="Bluetooth address, e.g. E4:AA:EC:81:21:AE (as `lintel ble scan` shows)."
    )
    model: str | None = Field(
        None, description="Model, for people and the demo (SBDW-002C, MCCGQ02HL, CGH1)."
    )
    bindkey: str | None = Field(None, description="Encryption key, 32 hex digits (prefer bindkey_file).")
    bindkey_file: str | None = Field(None, description="Absolute path of a file holding the bindkey.")
    bindkey_secret: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="Name of a deployed secret holding the bindkey (instead of bindkey or bindkey_file).",
    )
    _secret_key: str | None = PrivateAttr(None)  # the deployed secret, set by BleConfig.with_secrets
    offline_after_s: float | None = Field(
        None, gt=0, le=7 * 86_400, description="Silence before device_offline (default: the source's)."
    )
    enabled: bool = True

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, value: object) -> object:
        if isinstance(value, str):
            upper = value.strip().upper().replace("-", ":")
            if not _ADDRESS.match(upper):
                raise custom_error("not a Bluetooth address", "six hex pairs like E4:AA:EC:81:21:AE")
            return upper
        return value

    @field_validator("bindkey")
    @classmethod
    def _bindkey(cls, value: str | None) -> str | None:
        if value is not None and not _KEY.match(value.strip()):
            raise custom_error("not a bindkey", KEY_EXPECTED)
        return value

    @field_validator("bindkey_file")
    @classmethod
    def _bindkey_file(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isabs(value):
            raise custom_error("must be an absolute path", "e.g. /etc/lintel/keys/door-back.key")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> SensorConfig:
        if self.bindkey is not None and self.bindkey_file is not None:
            raise custom_error(
                "set bindkey or bindkey_file, not both",
                "one of them",
                key="bindkey_file",
                got=f'"{self.bindkey_file}"',
            )
        if self.bindkey_secret is not None and (self.bindkey is not None or self.bindkey_file is not None):
            raise custom_error(
                "bindkey_secret and a bindkey or bindkey_file both given",
                "one of them: bindkey_secret names a deployed secret",
                key="bindkey_secret",
                got=f'"{self.bindkey_secret}"',
            )
        return self

    def key(self) -> bytes | None:
        """The bindkey bytes, reading `bindkey_file` now. Raises ValueError/OSError with the reason."""
        if self.bindkey is not None:
            return parse_key(self.bindkey)
        if self.bindkey_secret is not None:
            if self._secret_key is None:  # never fall back to "no key": plaintext adverts would pass
                raise ValueError(f"the deployed secret {self.bindkey_secret} was not handed to the driver")
            return parse_key(self._secret_key)
        if self.bindkey_file is not None:
            return parse_key(Path(self.bindkey_file).read_text(encoding="utf-8"))
        return None


class BleConfig(SourceConfigBase):
    """A Bluetooth adapter listening for the configured sensors' advertisements."""

    def secret_names(self) -> list[tuple[str, str]]:
        return [
            (f"sensors[{i}].bindkey_secret", s.bindkey_secret)
            for i, s in enumerate(self.sensors)
            if s.bindkey_secret
        ]

    def with_secrets(self, secrets: Mapping[str, str]) -> BleConfig:
        sensors = []
        for sensor in self.sensors:
            resolved = sensor.model_copy()
            resolved._secret_key = secrets.get(sensor.bindkey_secret) if sensor.bindkey_secret else None
            sensors.append(resolved)
        return self.model_copy(update={"sensors": sensors})

    type: Literal["ble"]
    adapter: str = Field("hci0", pattern=r"^hci[0-9]{1,2}$", description="BlueZ adapter name.")
    scanning: Literal["auto", "passive", "active"] = Field(
        "auto", description="passive needs BlueZ ≥ 5.56 with --experimental; auto falls back to active."
    )
    backend: Literal["bluez", "simulated"] = Field(
        "bluez", description="simulated: a radio of simulated sensors (demo, benchmarks), no adapter."
    )
    offline_after_s: float = Field(
        10_800, gt=0, le=7 * 86_400, description="Silence before a sensor is reported device_offline."
    )
    telemetry_interval_s: float = Field(
        300,
        gt=0,
        le=86_400,
        description="At most one battery/RSSI/temperature reading per sensor per interval.",
    )
    watchdog_silence_s: float = Field(
        600, ge=10, le=86_400, description="No advert from any sensor this long: restart the scanner."
    )
    max_adapter_resets: int = Field(3, ge=0, le=20, description="Adapter resets before ble_adapter_failed.")
    queue_size: int = Field(
        2048, ge=16, le=1_000_000, description="Adverts buffered between radio and decoder."
    )
    counter_restart_after_s: float = Field(
        600,
        ge=60,
        le=7 * 86_400,
        description="An encrypted sensor whose counter went back (battery change) is believed after "
        "this long of fresh, increasing adverts while its old counter stays silent; until then, "
        "nothing it says is applied (a replay of recorded adverts cannot pass).",
    )
    counter_restart_max_start: int = Field(
        4096,
        ge=0,
        le=0xFFFF_FFFF,
        description="Highest counter a restarted sensor may start from (a fresh device counts from 0).",
    )
    sensors: list[SensorConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_addresses(self) -> BleConfig:
        seen: dict[str, int] = {}
        for i, sensor in enumerate(self.sensors):
            if sensor.address in seen:
                raise custom_error(
                    f"address already used by sensors[{seen[sensor.address]}]",
                    "one entry per sensor",
                    key=f"sensors[{i}].address",
                    got=f'"{sensor.address}"',
                )
            seen[sensor.address] = i
        return self

    def restart_policy(self) -> RestartPolicy:
        return RestartPolicy(
            probation_s=self.counter_restart_after_s, max_start=self.counter_restart_max_start
        )

    def device_ids(self) -> list[tuple[str, str]]:
        return [("id", self.id)] + [(f"sensors[{i}].id", s.id) for i, s in enumerate(self.sensors)]

    def file_problems(self, prefix: str) -> list[ConfigProblem]:
        problems = []
        for i, sensor in enumerate(self.sensors):
            if sensor.bindkey_file is None:
                continue
            where = f"{prefix}.sensors[{i}].bindkey_file"
            try:
                sensor.key()
            except FileNotFoundError:
                problems.append(
                    ConfigProblem(where, "file not found", f'"{sensor.bindkey_file}"', KEY_EXPECTED)
                )
            except OSError as exc:
                problems.append(
                    ConfigProblem(where, f"cannot read: {exc.strerror}", f'"{sensor.bindkey_file}"')
                )
            except ValueError:
                problems.append(
                    ConfigProblem(
                        where, "file does not hold a bindkey", f'"{sensor.bindkey_file}"', KEY_EXPECTED
                    )
                )
        return problems
