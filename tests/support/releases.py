"""Release payloads and packages for the update tests: this tree's code stamped with another version.

A payload here is what `scripts/build-deb.sh` puts under /usr/lib/lintel/payload, minus the wheels:
the releases it builds use the shared venv's packages (`install --site-packages`), so a test makes
a release in well under a second. `breakage` edits the copy's code the way a bad release would be
broken: `crash` (raises at start, before READY), `no_broker` (its uplink dials a port nobody
listens on). Packages are real .deb files made with dpkg-deb around such a payload.
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE_PACKAGES = Path(sysconfig.get_path("purelib"))
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "onnx")


def payload(where: Path, version: str, breakage: str | None = None) -> Path:
    """A payload folder for `version` (code of this tree, models' manifests without the ONNX files)."""
    out = where / f"payload-{version}"
    src = out / "src"
    for part in ("gateway", "drivers", "models"):
        shutil.copytree(ROOT / part, src / part, ignore=IGNORE)
    init = src / "gateway" / "__init__.py"
    text = init.read_text()
    init.write_text(text.replace('__version__ = "', f'__version__ = "{version}"  # was "', 1))
    if breakage == "crash":
        main = src / "gateway" / "cli" / "run.py"
        main.write_text(
            main.read_text().replace(
                "    os.umask(DAEMON_UMASK)", '    raise RuntimeError("a release that dies at start")', 1
            )
        )
    elif breakage == "no_broker":
        settings = src / "gateway" / "delivery" / "settings.py"
        text = settings.read_text()
        old = "port=url.port or (8883 if cfg.tls else 1883),"
        assert old in text, "the uplink settings changed: update this breakage"
        settings.write_text(text.replace(old, "port=1,", 1))
    elif breakage is not None:
        raise ValueError(breakage)
    (out / "VERSION").write_text(version + "\n")
    return out


def deb(where: Path, version: str, breakage: str | None = None, arch: str = "amd64") -> Path:
    """A .deb of package lintel holding `payload(version)` under usr/lib/lintel/payload."""
    tree = where / f"deb-{version}"
    body = payload(where, version, breakage)
    dest = tree / "usr" / "lib" / "lintel"
    dest.mkdir(parents=True)
    shutil.move(body, dest / "payload")
    (tree / "DEBIAN").mkdir()
    (tree / "DEBIAN" / "control").write_text(
        f"Package: lintel\nVersion: {version}\nArchitecture: {arch}\nMaintainer: Lintel <lintel@invalid>\n"
        "Description: Lintel test release\n"
    )
    out = where / f"lintel_{version}_{arch}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(tree), str(out)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(tree)
    return out
