"""A signed deployment: a config document from the office, checked before anything is built.

A deployment is the `deploy_config` command's arguments: `version` (an integer that only grows),
`config_toml` (a config document) and `secrets` (name -> a secret sealed to this gateway's key,
`gateway.config.secrets`). It is laid over the installer's local file (`gateway.config.layers`):
the local file stays the base, so what the office does not send stays as the installer wrote it.

What a deployment may never do, refused before anything is read or built:
- name a local file or folder: any `*_file` or `*_dir` key, `outbox.path`, `faces.gallery`, a camera
  stream that is a file (`file://…` or a path that is not a `/dev/video` device), a Modbus bus that is
  not a network address or a `/dev/` device. A remote party never makes the gateway open a path;
- change who may command this gateway (`[commands]`), or which gateway it is (`gateway.id`, `site`).

`check` returns the candidate `LoadedConfig` (its `origin` is `deployment vN`) or raises
`ConfigError` whose problems read exactly like `lintel check-config`'s.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from gateway.config.layers import LOCAL, fold, leaf_origins
from gateway.config.loader import LoadedConfig, file_problems
from gateway.config.model import GatewayConfig
from gateway.config.problems import problems_from_validation, show
from gateway.config.secrets import GatewayKey, SecretError
from gateway.config.toml_errors import depth_problem, syntax_problem
from gateway.core.errors import ConfigError, ConfigProblem
from gateway.core.redact import is_secret_key

SOURCE = "deployment"
MAX_CONFIG_BYTES = 256 * 1024
LOCAL_ONLY_SECTIONS = {"commands": "operator keys and roles are set only in the gateway's local file"}
LOCAL_FILE_KEYS = {("outbox", "path"), ("faces", "gallery")}
_FILE_EXPECTED = (
    "no local file in a deployment: secrets as *_secret names (sealed in the deployment), "
    "files only in the gateway's local config"
)
_CLEAR_EXPECTED = (
    "the secret sealed in the deployment's secrets and named by a *_secret key (docs/deployments.md)"
)
_NETWORK_STREAM = re.compile(r"^(rtsps?|https?)://", re.IGNORECASE)
_VIDEO_DEVICE = re.compile(r"^/dev/video[0-9]{1,3}$")
_MODBUS_DEVICE = re.compile(r"^(rtu|ascii)://(/dev/[A-Za-z0-9_./-]{1,128})(\?[^/]*)?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Deployment:
    """A deployment as received (the signature already verified by the command router)."""

    version: int
    config_toml: str
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)  # name -> sealed text
    by: str = "?"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.config_toml.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{SOURCE} v{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "config_toml": self.config_toml,
            "secrets": dict(self.secrets),
            "by": self.by,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Deployment:
        version, text, secrets = doc.get("version"), doc.get("config_toml"), doc.get("secrets") or {}
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError("version: a whole number >= 1")
        if not isinstance(text, str):
            raise ValueError("config_toml: the config document as a string")
        if not isinstance(secrets, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in secrets.items()
        ):
            raise ValueError("secrets: a table of names to sealed secrets")
        by = doc.get("by")
        return cls(version, text, secrets, by if isinstance(by, str) else "?")


def _problem(path: str, message: str, got: Any, expected: str) -> ConfigProblem:
    return ConfigProblem(path, message, show(got), expected)


def local_path_problems(doc: Mapping[str, Any]) -> list[ConfigProblem]:
    """Every place where the document names a local file or folder, or a local-only setting."""
    problems: list[ConfigProblem] = []

    def walk(node: Any, path: str, parts: tuple[str, ...]) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                sub = f"{path}.{key}" if path else key
                if key.endswith(("_file", "_dir")) or (*parts[:1], key) in LOCAL_FILE_KEYS:
                    problems.append(
                        _problem(sub, "a deployment may not name a local file", value, _FILE_EXPECTED)
                    )
                    continue
                if is_secret_key(key) and not key.endswith("_secret") and isinstance(value, str):
                    # A deployment is signed, not encrypted: a secret in it would travel and rest in clear.
                    problems.append(
                        ConfigProblem(sub, "a secret in clear in a deployment", None, _CLEAR_EXPECTED)
                    )
                    continue
                walk(value, sub, (*parts, key))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{path}[{index}]", parts)

    for section, why in LOCAL_ONLY_SECTIONS.items():
        if section in doc:
            problems.append(_problem(section, f"not deployable: {why}", doc[section], f"no [{section}]"))
    walk({k: v for k, v in doc.items() if k not in LOCAL_ONLY_SECTIONS}, "", ())
    for index, source in enumerate(doc.get("sources") or []):
        found = _device_problem(source) if isinstance(source, Mapping) else None
        if found is not None:
            key, value, expected = found
            problems.append(
                _problem(f"sources[{index}].{key}", "a deployment may not name a local file", value, expected)
            )
    return problems


def _device_problem(source: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(key, value, what would do) where a source's stream or bus is a local file, not a device."""
    kind, url, endpoint = source.get("type"), source.get("url"), source.get("endpoint")
    if (
        kind == "camera"
        and isinstance(url, str)
        and not (_NETWORK_STREAM.match(url) or _VIDEO_DEVICE.match(url))
    ):
        return "url", url, "rtsp://, http(s):// or /dev/videoN"
    serial = isinstance(endpoint, str) and endpoint.lower().startswith(("rtu:", "ascii:"))
    if kind == "modbus" and serial and (not _MODBUS_DEVICE.match(str(endpoint)) or ".." in str(endpoint)):
        return (
            "endpoint",
            str(endpoint),
            "tcp://host:port, rtu+tcp://host:port or rtu:///dev/… (a serial port)",
        )
    return None


def _identity_problems(doc: Mapping[str, Any], base: LoadedConfig) -> list[ConfigProblem]:
    gw = doc.get("gateway")
    if not isinstance(gw, Mapping):
        return []
    problems = []
    for key in ("id", "site"):
        mine = getattr(base.config.gateway, key)
        if key in gw and gw[key] != mine:
            problems.append(
                _problem(
                    f"gateway.{key}", "a deployment for another gateway", gw[key], f'"{mine}" (or no {key})'
                )
            )
    return problems


def parse_document(text: str) -> dict[str, Any]:
    """The deployment's TOML as a table; ConfigError (check-config's texts) if it is not TOML."""
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                ConfigProblem(
                    SOURCE, "too large", f"{len(text.encode())} bytes", f"at most {MAX_CONFIG_BYTES}"
                )
            ],
            SOURCE,
        )
    too_deep = depth_problem(text)
    if too_deep is not None:
        raise ConfigError([too_deep], SOURCE)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([syntax_problem(text, exc)], SOURCE) from None


def open_secrets(dep: Deployment, key: GatewayKey) -> dict[str, str]:
    """The deployment's secrets opened with this gateway's key; ConfigError naming each that fails."""
    opened: dict[str, str] = {}
    problems = []
    for name, sealed in sorted(dep.secrets.items()):
        try:
            opened[name] = key.open(name, sealed)
        except SecretError as exc:
            problems.append(ConfigProblem(f"secrets.{name}" if len(name) <= 64 else "secrets", str(exc)))
    if problems:
        raise ConfigError(problems, SOURCE)
    return opened


def check(dep: Deployment, base: LoadedConfig, key: GatewayKey, stored: Mapping[str, str]) -> LoadedConfig:
    """The config `dep` makes over `base`: fully validated (files the base names checked too), its
    secrets opened and resolved; ConfigError with every problem otherwise. Reads no file `dep` names."""
    doc = parse_document(dep.config_toml)
    problems = local_path_problems(doc) + _identity_problems(doc, base)
    if problems:
        raise ConfigError(problems, SOURCE)
    opened = open_secrets(dep, key)
    merged, origins = fold(base.raw, doc, dep.label, leaf_origins(base.raw, LOCAL))
    try:
        config = GatewayConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, GatewayConfig), SOURCE) from None
    secrets = {**stored, **opened}  # file_problems below checks that each *_secret is among them
    candidate = replace(
        base,
        config=config,
        sha256=dep.sha256,
        local_sha256=base.file_sha256,
        raw=merged,
        secrets=secrets,
        origin=dep.label,
        origins=origins,
    )
    problems.extend(file_problems(candidate))
    if problems:
        raise ConfigError(problems, SOURCE)
    return candidate
