"""Config base classes shared by the gateway and the drivers (pydantic v2).

Every config model forbids unknown keys and is immutable once validated. Validators never touch
files or devices: checks that need I/O run after validation, in `gateway.config.loader`.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from gateway.core.errors import ConfigProblem
from gateway.core.redact import mask_url

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ID_EXPECTED = "1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"

Identifier = Annotated[str, Field(pattern=ID_PATTERN)]


def custom_error(
    message: str, expected: str, *, key: str | None = None, got: str | None = None
) -> PydanticCustomError:
    """A validation error the config renderer shows as `path: message (got X); expected <expected>`.

    Raised from a field validator, the path is the field's. Raised from a model validator, `key`
    names the offending key below the model (`points.power_w.type`, `meters[2].unit`) and `got`
    the value as written, since pydantic only knows the model's own location there.
    """
    return PydanticCustomError("lintel", message, {"expected": expected, "key": key, "got": got})


def one_password_source(password_file: str | None, password_secret: str | None) -> None:
    """Model validator body: a device's password comes from a local file or a deployed secret,
    never both (the error names the secret as the key to drop or keep)."""
    if password_file is not None and password_secret is not None:
        raise custom_error(
            "password_file and password_secret both given",
            "one of them: password_secret names a deployed secret, password_file a local file",
            key="password_secret",
            got=f'"{password_secret}"',
        )


def check_file_name(value: str | None, what: str, key: str) -> str | None:
    """Field validator body: a `*_file` key names a file. An empty or blank name would resolve to
    the config file's own folder ("file not found (got /etc/lintel)", naming neither the value nor
    the fix), so it is refused here. `what` is the file expected ("a readable file holding ...")."""
    if value is not None and not value.strip():
        raise custom_error(
            "empty file name",
            f"the path of {what} (relative to the config file's folder), or no {key} key",
            got=f'"{value}"',
        )
    return value


def check_url(url: str, what: str, schemes: tuple[str, ...], expected: str, credentials_in: str) -> str:
    """Field validator body: `url` is scheme://host[:port] with one of `schemes`, no credentials
    (they belong in `credentials_in`, since URLs appear in logs), no path or query. `what` names
    the URL in the messages ("broker URL")."""
    got = f'"{mask_url(url)}"'  # every refusal is printed and logged: never with a password
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise custom_error(f"not a valid {what}", expected, got=got) from None
    if parts.scheme not in schemes:
        raise custom_error("unsupported URL scheme", expected, got=got)
    if not parts.hostname:
        raise custom_error(f"{what} has no host", expected, got=got)
    if port == 0:
        raise custom_error(f"{what} port must be 1-65535", expected, got=got)
    if parts.username or parts.password or "@" in parts.netloc:
        raise custom_error("credentials must not be inline in the URL", credentials_in, got=got)
    if parts.path not in ("", "/") or parts.query:
        raise custom_error(f"{what} must not have a path or query", expected, got=got)
    return url


def check_zone(value: str | None) -> str | None:
    """Field validator: None (the system's zone) or an IANA zone name this machine knows."""
    if value is not None:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise custom_error("unknown time zone", 'an IANA zone name such as "Asia/Shanghai"') from None
    return value


class StrictModel(BaseModel):
    """Unknown keys are errors; a typo must never silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)


class SourceConfigBase(StrictModel):
    """Keys every `[[sources]]` table has. Each driver subclasses it with `type: Literal[...]`."""

    type: str = Field(description="The driver: a key of gateway.config.driver_registry.DRIVERS.")
    id: Identifier = Field(description="Unique id of this source; appears in topics and payloads.")
    enabled: bool = Field(True, description="false keeps the entry but does not start it.")

    def device_ids(self) -> list[tuple[str, str]]:
        """(key path below this source, id) of every id this source emits records under.

        Ids are unique across the whole config, so a source that speaks for several devices (a
        Modbus bus and its meters) lists them all here.
        """
        return [("id", self.id)]

    def secret_names(self) -> list[tuple[str, str]]:
        """(key below this source, name) of each deployed secret this source names (`*_secret`)."""
        return []

    def with_secrets(self, secrets: Mapping[str, str]) -> Self:
        """This config holding the deployed secrets it names, for its driver (never dumped or
        shown: kept in a private attribute). Called by the runtime just before the source is made."""
        return self

    def file_problems(self, prefix: str) -> list[ConfigProblem]:
        """Problems with files this source names (keys, certificates), found by reading them.

        Called by the loader after validation, since validators never touch files. `prefix` is the
        source's path in the config (`sources[2]`).
        """
        return []

    def config_warnings(self, prefix: str) -> list[ConfigProblem]:
        """Settings of this source that work but are risky (an explicit security opt-out).

        `check-config` prints them and `lintel run` logs them as WARNING at start.
        """
        return []
