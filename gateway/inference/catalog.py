"""The model catalog: one TOML manifest per model, and the ONNX files built from them.

A manifest (`models/<name>.toml` in the repository, or a user's own in `inference.manifest_dir`) says
where the model comes from (registry package, version, member files and their sha256), how it was
turned into ONNX, the sha256 of that ONNX file, its licence, and everything needed to feed it and
read it: input size, colour order, normalisation, resize mode, output layout and class names.

The catalog never downloads: `models/fetch.py` (run by the set-up command) builds the files; at run
time a model is only found, checked against its sha256 and loaded.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class ModelPlaces(Protocol):
    """Where a config says the built models and the user's own manifests are (`[inference]`)."""

    @property
    def model_dir(self) -> str | None: ...

    @property
    def manifest_dir(self) -> str | None: ...


REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL_DIR = REPO_MODELS / "onnx"
# object detectors (task "detect"), the face detector (task "face_detect") and face embedders
# (task "face_embed") and presentation-attack detectors (task "face_pad", layout "pad")
LAYOUTS = ("darknet_yolo", "yolo_region", "yolov5", "yolov8", "yolox", "nanodet", "yunet", "embedding", "pad")


class ModelError(Exception):
    """A model that cannot be used: missing, corrupt, mismatched. The message says what to do."""


@dataclass(frozen=True, slots=True)
class InputSpec:
    width: int
    height: int
    colour: str  # "rgb" or "bgr"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str  # "letterbox" (keeps aspect, pads) or "stretch"
    pad_value: int


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    task: str
    file: Path  # where the ONNX file is expected
    sha256: str
    licence: str
    input: InputSpec
    layout: str
    classes: tuple[str, ...]
    decode: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    manifest_path: Path | None = None
    graph_optimisation: str = "all"  # onnxruntime level: all | extended | basic (engine.py)

    def verify(self) -> str:
        """sha256 of the file if it matches the manifest; ModelError naming the fix otherwise."""
        if not self.file.is_file():
            raise ModelError(
                f"model {self.name!r}: {self.file} is missing; build it with `python models/fetch.py` "
                "(the set-up command does this)"
            )
        digest = verified_sha256(self.file)
        if digest != self.sha256:
            raise ModelError(
                f"model {self.name!r}: {self.file} has sha256 {digest[:16]}…, the manifest expects "
                f"{self.sha256[:16]}…: the file is corrupt or from another build; delete it and run "
                "`python models/fetch.py`"
            )
        return digest


_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def verified_sha256(path: Path) -> str:
    """sha256 of a model file, hashed once per file version in this process.

    The loader's config check and the model load both verify the same 45 MB file at start-up, and
    every `reload_config` checks it again: the digest is kept per (path, inode, size, mtime).
    """
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(path)
    return _DIGESTS[key]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parse_manifest(path: Path, model_dir: Path) -> Manifest:
    """Read one manifest. The ONNX file is `file` in `model_dir` for the repository's manifests,
    or next to the manifest for a user's (an absolute `file` is taken as is)."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"{path}: cannot read the manifest: {exc}") from exc
    try:
        inp = raw["input"]
        out = raw["output"]
        file = Path(raw["file"])
        if not file.is_absolute():
            file = (model_dir if path.parent == REPO_MODELS else path.parent) / file
        layout = out["layout"]
        if layout not in LAYOUTS:
            raise ModelError(
                f"{path}: output.layout {layout!r} is unknown; expected one of {', '.join(LAYOUTS)}"
            )
        return Manifest(
            name=raw["name"],
            task=raw.get("task", "detect"),
            file=file,
            sha256=raw["sha256"].lower(),
            licence=raw["licence"],
            input=InputSpec(
                width=int(inp["width"]),
                height=int(inp["height"]),
                colour=inp.get("colour", "rgb"),
                mean=tuple(float(v) for v in inp.get("mean", [0, 0, 0])),  # type: ignore[arg-type]
                std=tuple(float(v) for v in inp.get("std", [1, 1, 1])),  # type: ignore[arg-type]
                resize=inp.get("resize", "letterbox"),
                pad_value=int(inp.get("pad_value", 114)),
            ),
            layout=layout,
            classes=tuple(out.get("classes", ())),
            decode={k: v for k, v in out.items() if k not in ("layout", "classes")},
            source=raw.get("source", {}),
            manifest_path=path,
            graph_optimisation=_optimisation(path, raw.get("graph_optimisation", "all")),
        )
    except KeyError as exc:
        raise ModelError(f"{path}: the manifest lacks the key {exc.args[0]!r}") from exc


def _optimisation(path: Path, value: str) -> str:
    if value not in ("all", "extended", "basic"):
        raise ModelError(f"{path}: graph_optimisation {value!r} is unknown; expected all, extended or basic")
    return value


def catalog(model_dir: Path = DEFAULT_MODEL_DIR, extra_dir: Path | None = None) -> dict[str, Manifest]:
    """Every manifest by name: the repository's, then the user's (a user's may not shadow ours)."""
    found: dict[str, Manifest] = {}
    dirs = [REPO_MODELS] + ([extra_dir] if extra_dir is not None else [])
    for folder in dirs:
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            manifest = parse_manifest(path, model_dir)
            if manifest.name in found:
                raise ModelError(
                    f"{path}: a model named {manifest.name!r} is already in "
                    f"{found[manifest.name].manifest_path}"
                )
            found[manifest.name] = manifest
    return found


def configured(vision: ModelPlaces) -> dict[str, Manifest]:
    """The catalog where a `[vision]` section says the models and the user's manifests are."""
    return catalog(
        Path(vision.model_dir) if vision.model_dir else DEFAULT_MODEL_DIR,
        Path(vision.manifest_dir) if vision.manifest_dir else None,
    )


def find(name: str, model_dir: Path = DEFAULT_MODEL_DIR, extra_dir: Path | None = None) -> Manifest:
    return pick(name, catalog(model_dir, extra_dir))


def pick(name: str, models: dict[str, Manifest]) -> Manifest:
    """The model `name` of a catalog, or a ModelError listing the known ones."""
    if name not in models:
        known = ", ".join(sorted(models)) or "none"
        raise ModelError(f"no model named {name!r}; known models: {known} (see `lintel models list`)")
    return models[name]
