"""Read, parse and validate a config file into a `GatewayConfig`, or raise `ConfigError` with all
problems. Relative file paths in the config are resolved against the config file's folder."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from gateway.config.model import MQTT_FILES, GatewayConfig
from gateway.config.problems import problems_from_validation, show
from gateway.config.toml_errors import MAX_DEPTH, depth_problem, syntax_problem
from gateway.core.errors import ConfigError, ConfigProblem
from gateway.lanes.doors.config import RELAY_PASSWORD_FILE


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    config: GatewayConfig
    path: Path | None
    base_dir: Path
    sha256: str  # of the config running (the local file, or the overlay of remote tunables)
    local_sha256: str | None = None  # of the local file, where an overlay of tunables applies
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the TOML as parsed
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)  # by name (deployments)
    origin: str = "local"  # "local", or "deployment vN" where a deployment runs (gateway.config.layers)
    origins: Mapping[str, str] = field(default_factory=dict, repr=False)  # key path -> layer

    @property
    def version(self) -> int | None:
        """The running deployment's version, None on the local file alone."""
        head, _, number = self.origin.rpartition(" v")
        return int(number) if head and number.isdigit() else None

    def secret(self, key_file: str | None, key_secret: str | None) -> str | None:
        """A password given as `*_file` (read now) or `*_secret` (from the secret store), or None."""
        if key_secret is not None:
            return self.secrets[key_secret]
        return read_secret(self.resolve(key_file)) if key_file is not None else None

    @property
    def file_sha256(self) -> str:
        """The sha256 of the installer's local file."""
        return self.local_sha256 or self.sha256

    def resolve(self, name: str) -> Path:
        """A path from the config, made absolute against the config file's folder."""
        p = Path(name).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def state_dir(self) -> Path:
        return self.resolve(self.config.gateway.state_dir)

    @property
    def runtime_dir(self) -> Path:
        return self.resolve(self.config.gateway.runtime_dir)

    @property
    def status_path(self) -> Path:
        return self.runtime_dir / "status.json"

    @property
    def outbox_path(self) -> Path:
        p = Path(self.config.outbox.path)
        return p if p.is_absolute() else self.state_dir / p


BOM = b"\xef\xbb\xbf"


def parse_config(data: bytes, name: str = "config", base_dir: Path | None = None) -> LoadedConfig:
    """Validate TOML bytes. No file or device is touched. Every refusal is a ConfigError whose
    problems name the key (and line), the value as written and the fix."""
    digest = hashlib.sha256(data).hexdigest()
    if data.startswith(BOM):
        raise ConfigError(
            [
                ConfigProblem(
                    f"{name} (line 1)",
                    "file starts with a UTF-8 byte order mark (BOM)",
                    "bytes EF BB BF",
                    "the file saved as UTF-8 without BOM (Notepad: 'UTF-8', not 'UTF-8 with BOM')",
                )
            ],
            name,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [
                ConfigProblem(
                    f"{name} (line {line})",
                    "file is not UTF-8 text",
                    f"byte {exc.start}",
                    "a UTF-8 TOML file",
                )
            ],
            name,
        ) from None
    too_deep = depth_problem(text)
    if too_deep is not None:  # tomllib would recurse until RecursionError
        raise ConfigError([too_deep], name)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([syntax_problem(text, exc)], name) from None
    except RecursionError:  # depth_problem should have caught it; never a traceback
        raise ConfigError(
            [ConfigProblem(name, "values nested too deeply", None, f"at most {MAX_DEPTH} levels")], name
        ) from None
    if not raw:
        raise ConfigError(
            [
                ConfigProblem(
                    name,
                    "the config file is empty" if not text.strip() else "the config file has no settings",
                    f"{len(data)} bytes",
                    "at least a [gateway] table with id and site (see config.example.toml)",
                )
            ],
            name,
        )
    try:
        config = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, GatewayConfig), name) from None
    except RecursionError:
        raise ConfigError(
            [ConfigProblem(name, "values nested too deeply", None, f"at most {MAX_DEPTH} levels")], name
        ) from None
    return LoadedConfig(config, None, base_dir or Path.cwd(), digest, raw=raw)


def load_config(path: str | os.PathLike[str], *, check_files: bool = True) -> LoadedConfig:
    """Read and validate a config file, then check the files it names (secrets, certificates)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [ConfigProblem(str(p), "config file not found", None, "a TOML file; see config.example.toml")],
            str(p),
        ) from None
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(str(p), f"cannot read config file: {exc.strerror}")], str(p)
        ) from None
    loaded = parse_config(data, str(p), p.resolve().parent)
    loaded = replace(loaded, path=p)
    if check_files:
        problems = file_problems(loaded, try_state_dir=True)
        if problems:
            raise ConfigError(problems, str(p))
    return loaded


def vision_problems(loaded: LoadedConfig) -> list[ConfigProblem]:
    """The models the fire lanes and face access need must be built and match their manifests
    (sha256 read once), and be of the right kind."""
    config = loaded.config
    wanted: list[tuple[str, str, str]] = []  # (config key, model name, task)
    if config.fire_lanes:
        wanted.append(("vision.detector", config.vision.detector, "detect"))
    if config.face_access:
        wanted.append(("faces.detector", config.faces.detector, "face_detect"))
        wanted.append(("faces.embedder", config.faces.embedder, "face_embed"))
        if config.faces.needs_pad(config.face_access):
            wanted += [("faces.pad_models", name, "face_pad") for name in config.faces.pad_models]
    if not wanted:
        return []
    from gateway.inference.catalog import ModelError, configured

    try:
        models = configured(config.inference)
    except ModelError as exc:
        return [ConfigProblem("inference.manifest_dir", str(exc))]
    problems: list[ConfigProblem] = []
    for key, name, task in wanted:
        kind = sorted(n for n, m in models.items() if m.task == task)
        if name not in models or models[name].task != task:
            problems.append(ConfigProblem(key, "unknown model", f'"{name}"', f"one of: {', '.join(kind)}"))
            continue
        try:
            models[name].verify()
        except ModelError as exc:
            problems.append(ConfigProblem(key, str(exc)))
    return problems


def file_problems(loaded: LoadedConfig, *, try_state_dir: bool = False) -> list[ConfigProblem]:
    """Problems with files the config names. Reads nothing but file metadata and the password.

    `try_state_dir` (the local file, at `run` and `check-config`) creates state_dir and a probe file
    in it and removes both; without it (a remote reload: never write where remote input says) only
    the folder's metadata is checked."""
    problems: list[ConfigProblem] = []
    mqtt = loaded.config.mqtt
    if mqtt is not None:
        for key, expected in MQTT_FILES.items():
            name = getattr(mqtt, key)
            if name is None:
                continue
            problems.extend(
                _file_problem(f"mqtt.{key}", loaded.resolve(name), expected, key == "password_file")
            )
    for index, door in enumerate(loaded.config.doors):
        secret = getattr(door.relay, "password_file", None)
        if secret is not None:
            expected = RELAY_PASSWORD_FILE
            problems.extend(
                _file_problem(f"doors[{index}].relay.password_file", loaded.resolve(secret), expected, True)
            )
    for index, source in enumerate(loaded.config.sources):
        problems.extend(source.file_problems(f"sources[{index}]"))
    problems.extend(vision_problems(loaded))
    problems.extend(secret_problems(loaded))
    state_dir = loaded.state_dir
    if try_state_dir:
        problem = state_dir_problem(state_dir)
    else:
        existing = next((p for p in (state_dir, *state_dir.parents) if p.exists()), None)
        writable = existing is not None and existing.is_dir() and os.access(existing, os.W_OK)
        problem = (
            None
            if writable
            else ConfigProblem(
                "gateway.state_dir",
                "folder cannot be created or written",
                show(str(state_dir)),
                _STATE_DIR_FIX,
            )
        )
    if problem is not None:
        problems.append(problem)
    return problems


def secret_refs(config: GatewayConfig) -> list[tuple[str, str]]:
    """(key path, name) of every `*_secret` the config names."""
    refs = []
    if config.mqtt is not None and config.mqtt.password_secret is not None:
        refs.append(("mqtt.password_secret", config.mqtt.password_secret))
    for index, source in enumerate(config.sources):
        refs.extend((f"sources[{index}].{key}", name) for key, name in source.secret_names())
    for index, door in enumerate(config.doors):
        name = getattr(door.relay, "password_secret", None)
        if name is not None:
            refs.append((f"doors[{index}].relay.password_secret", name))
    return refs


def secret_problems(loaded: LoadedConfig) -> list[ConfigProblem]:
    """`*_secret` names that neither the config's own secrets (a deployment's) nor the secret store
    under state_dir hold. A store that cannot be read counts as empty."""
    missing = [(path, name) for path, name in secret_refs(loaded.config) if name not in loaded.secrets]
    if not missing:
        return []
    from gateway.config.secrets import SecretError, SecretStore

    store = SecretStore(loaded.state_dir)
    try:
        known = store.load()
    except SecretError:
        known = {}
    listed = ", ".join(sorted(known)) or f"none in {store.path}"
    return [
        ConfigProblem(
            path, "no such secret", show(name), f"a secret a deployment brought ({listed}), or a *_file"
        )
        for path, name in missing
        if name not in known
    ]


def _file_problem(key: str, target: Path, expected: str, secret: bool) -> list[ConfigProblem]:
    if not target.is_file():
        return [ConfigProblem(key, "file not found", show(str(target)), expected)]
    if not os.access(target, os.R_OK):
        return [ConfigProblem(key, "file is not readable", show(str(target)), expected)]
    if secret and not read_secret(target):
        return [ConfigProblem(key, "password file is empty", show(str(target)), expected)]
    return []


_STATE_DIR_FIX = "a writable folder for the service user (systemd's StateDirectory= makes /var/lib/lintel)"


def state_dir_problem(state_dir: Path) -> ConfigProblem | None:
    """Whether the daemon can create `state_dir` and write in it, found by doing it: permission bits
    do not tell (root passes every check, yet cannot write under /proc or on a read-only mount).
    Folders this check creates are removed again, so `check-config` leaves nothing behind."""
    created: list[Path] = []
    try:
        for folder in reversed([state_dir, *state_dir.parents]):
            if not folder.exists():
                folder.mkdir()
                created.append(folder)
        fd, probe = tempfile.mkstemp(prefix=".lintel-write-check-", dir=state_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return ConfigProblem(
            "gateway.state_dir",
            f"folder cannot be created or written: {exc.strerror or exc}",
            show(str(state_dir)),
            _STATE_DIR_FIX,
        )
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
    return None


def config_warnings(loaded: LoadedConfig) -> list[ConfigProblem]:
    """Settings that work but are risky; `check-config` prints them and `run` logs them."""
    warnings: list[ConfigProblem] = list(loaded.config.renamed)
    mqtt = loaded.config.mqtt
    if mqtt is not None and (mqtt.password_file or mqtt.password_secret) and not mqtt.tls:
        host = urlsplit(mqtt.url).hostname or ""
        if host not in ("localhost", "127.0.0.1", "::1"):
            warnings.append(
                ConfigProblem(
                    "mqtt.url",
                    "the MQTT password travels unencrypted over plain mqtt://",
                    show(mqtt.url),
                    f"mqtts://{host} (TLS, with mqtt.ca_file if the broker's CA is private)",
                )
            )
    for index, source in enumerate(loaded.config.sources):
        warnings.extend(source.config_warnings(f"sources[{index}]"))
    from gateway.config.secret_files import secret_file_warnings

    warnings.extend(secret_file_warnings(loaded.config, loaded.resolve))
    return warnings


def read_secret(path: Path) -> str:
    """A secret file's content without the trailing newline editors add."""
    return path.read_text(encoding="utf-8").rstrip("\r\n")
