"""The Debian package as built by scripts/build-deb.sh (amd64, uncompressed to keep it quick): its
control fields, conffile, units, wheels and models, and the maintainer scripts' handling of every
argument Debian policy passes them. Installing it on a fresh root, arm64 under qemu, and purging it
are slow: bench/deb_install.sh."""

from __future__ import annotations

import hashlib
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "deb"


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    out = tmp_path_factory.mktemp("dist")
    # --offline: the wheels come from .cache/wheels/amd64, filled by scripts/setup.sh --test
    done = subprocess.run(
        [str(ROOT / "scripts/build-deb.sh"), "--arch", "amd64", "--out", str(out), "--compress", "none",
         "--offline", "--version", "9.8.7"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    deb = out / "lintel_9.8.7_amd64.deb"
    tree = out / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    yield deb, tree


def test_control_conffile_and_layout(unpacked: tuple[Path, Path]) -> None:
    deb, tree = unpacked
    fields = dict(
        line.split(": ", 1) for line in (tree / "DEBIAN/control").read_text().splitlines() if ": " in line
    )
    assert (
        fields["Package"] == "lintel" and fields["Version"] == "9.8.7" and fields["Architecture"] == "amd64"
    )
    assert "python3 (>= 3.11)" in fields["Depends"] and "python3-venv" in fields["Depends"]
    assert (tree / "DEBIAN/conffiles").read_text().split() == ["/etc/lintel/config.toml"]
    assert (tree / "etc/lintel/config.toml").read_text() == (ROOT / "config.example.toml").read_text()
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^-rw-r----- root/root .* \./etc/lintel/config\.toml$", listing, re.M)
    assert re.search(r"\./usr/bin/lintel -> /opt/lintel/current/bin/lintel$", listing, re.M)
    for unit in ("lintel.service", "lintel-update.path", "lintel-update.service"):
        assert (tree / "lib/systemd/system" / unit).read_bytes() == (ROOT / "systemd" / unit).read_bytes()
    assert not re.search(r"\./opt/", listing), "releases are built by postinst, never owned by dpkg"
    payload = tree / "usr/lib/lintel/payload"
    assert (payload / "VERSION").read_text().strip() == "9.8.7"
    assert '__version__ = "9.8.7"' in (payload / "src/gateway/__init__.py").read_text()
    assert (payload / "src/gateway/cli/release_tools.py").is_file()


def test_every_wheel_is_pinned_by_hash_and_built_for_cpython_311_on_bookworm(
    unpacked: tuple[Path, Path],
) -> None:
    payload = unpacked[1] / "usr/lib/lintel/payload"
    wheels = {w.name: w for w in (payload / "wheels").glob("*.whl")}
    pinned = [line.split() for line in (payload / "requirements.txt").read_text().splitlines()]
    assert len(pinned) == len(wheels) >= 20
    names = {re.split(r"==", p[0])[0].lower().replace("_", "-") for p in pinned}
    for needed in (
        "paho-mqtt",
        "pydantic",
        "onnxruntime",
        "opencv-python-headless",
        "numpy",
        "bleak",
        "pymodbus",
    ):
        assert needed in names
    # onnx builds the models at set-up; nothing needs it at run time (8.9 MB saved per package)
    assert "onnx" not in names
    by_hash = {hashlib.sha256(w.read_bytes()).hexdigest(): name for name, w in wheels.items()}
    for spec, digest in pinned:
        assert digest.removeprefix("--hash=sha256:") in by_hash, spec
    for name in wheels:
        tags = name.removesuffix(".whl").split("-")[-3:]
        assert tags[0] in ("py3", "py2.py3", "cp311", "cp37", "cp310", "cp38", "cp39"), name
        assert tags[1] in ("none", "cp311", "abi3"), name
        for platform in tags[2].split("."):
            assert platform == "any" or platform.endswith("x86_64"), name
            glibc = re.match(r"manylinux_2_(\d+)_", platform)
            assert glibc is None or int(glibc.group(1)) <= 36, f"{name} needs a newer glibc than bookworm's"


def test_models_are_the_ones_the_manifests_pin(unpacked: tuple[Path, Path]) -> None:
    src = unpacked[1] / "usr/lib/lintel/payload/src/models"
    manifests = sorted((ROOT / "models").glob("*.toml"))
    assert manifests
    for manifest in manifests:
        body = tomllib.loads(manifest.read_text())
        built = src / "onnx" / body["file"]
        assert hashlib.sha256(built.read_bytes()).hexdigest() == body["sha256"], built.name
    assert sorted(p.name for p in (src / "onnx").iterdir()) == sorted(
        tomllib.loads(m.read_text())["file"] for m in manifests
    )


@pytest.mark.parametrize(
    ("script", "arguments"),
    [
        ("postinst", ["abort-upgrade", "abort-remove", "abort-deconfigure"]),
        ("prerm", ["upgrade", "failed-upgrade"]),
        ("postrm", ["upgrade", "failed-upgrade", "abort-install", "abort-upgrade", "disappear"]),
    ],
)
def test_maintainer_scripts_are_posix_sh_and_accept_every_policy_argument(
    script: str, arguments: list[str]
) -> None:
    """`sh -n`, and the arguments that must change nothing do nothing (and exit 0); an unknown one
    fails. (configure, remove and purge act on the system: bench/deb_install.sh runs them in a root.)"""
    path = SCRIPTS / script
    assert path.read_text().startswith("#!/bin/sh\n") and "set -e" in path.read_text()
    assert subprocess.run(["sh", "-n", str(path)]).returncode == 0
    for argument in arguments:
        done = subprocess.run(["sh", str(path), argument, "0.1.0"], capture_output=True, text=True)
        assert done.returncode == 0, (argument, done.stderr)
    assert subprocess.run(["sh", str(path), "bogus"], capture_output=True).returncode == 1
