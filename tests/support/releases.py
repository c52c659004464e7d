"""Release payloads and packages for the update tests: this tree's code stamped with another version.

A payload here is what `scripts/build-deb.sh` puts under /usr/lib/lintel/payload, minus the wheels:
the releases it builds use the shared venv's packages (`install --site-packages`), so a test makes
a release in well under a second. `breakage` edits the copy's code the way a bad release would be
broken: `crash` (raises at start, before READY), `no_broker` (its uplink dials a port nobody
listens on), `no_watchdog` (never pets systemd's watchdog), `no_ready` (never sends READY=1); or
changed the way a real next release changes a data format: `outbox_v4` (the outbox format 4, a new
table, running on format 3 until it may migrate). Several: "outbox_v4+no_broker".
Packages are real .deb files made with dpkg-deb around such a payload.
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
    for one in (breakage or "").split("+"):
        _break(src, one or None)
    (out / "VERSION").write_text(version + "\n")
    return out


OUTBOX_V4 = '''

def _to_4(conn: sqlite3.Connection) -> None:
    """3 -> 4 (a test release): a table the next release would use."""
    conn.execute("CREATE TABLE IF NOT EXISTS notes (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


STEPS[4] = _to_4
'''


def _break(src: Path, breakage: str | None) -> None:
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
    elif breakage == "no_watchdog":  # runs, but its watchdog pets never reach systemd
        health = src / "gateway" / "runtime" / "health.py"
        text = health.read_text()
        old = "                notifier.watchdog()\n"
        assert old in text, "the watchdog pet moved: update this breakage"
        health.write_text(text.replace(old, "                pass\n", 1))
    elif breakage == "no_ready":  # runs, but never tells systemd it is ready
        daemon = src / "gateway" / "runtime" / "daemon.py"
        text = daemon.read_text()
        old = "            self.notifier.ready(self._status_line())\n"
        assert old in text, "READY moved: update this breakage"
        daemon.write_text(text.replace(old, "            pass\n", 1))
    elif breakage == "outbox_v4":
        schema = src / "gateway" / "storage" / "outbox" / "schema.py"
        text = schema.read_text()
        assert "SCHEMA_VERSION = 3\n" in text and "runs_on=3)" in text, "the outbox format changed"
        schema.write_text(text.replace("SCHEMA_VERSION = 3\n", "SCHEMA_VERSION = 4\n", 1) + OUTBOX_V4)
    elif breakage is not None:
        raise ValueError(breakage)


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


def apt_repository(served: Path, debs: list[Path], gnupg: Path) -> tuple[Path, str]:
    """A signed flat apt repository of `debs` in `served` (dpkg-scanpackages, an InRelease signed
    with a fresh Ed25519 key): what an operator's aptly/reprepro serves, in its smallest form.
    Returns the public keyring (for signed-by) and the key's fingerprint."""
    import gzip
    import hashlib

    for deb in debs:
        shutil.copy(deb, served / deb.name)
    packages = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "."], cwd=served, capture_output=True, check=True
    ).stdout
    (served / "Packages").write_bytes(packages)
    (served / "Packages.gz").write_bytes(gzip.compress(packages))
    date = subprocess.run(["date", "-Ru"], capture_output=True, text=True).stdout.strip()
    lines = [
        "Origin: lintel-test",
        "Label: lintel-test",
        "Suite: stable",
        "Codename: stable",
        f"Date: {date}",
    ]
    lines.append("SHA256:")
    for name in ("Packages", "Packages.gz"):
        data = (served / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    (served / "Release").write_text("\n".join(lines) + "\n")
    gnupg.mkdir(mode=0o700, exist_ok=True)
    env = {"GNUPGHOME": str(gnupg), "PATH": "/usr/bin:/bin"}
    gpg = ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    uid = "Lintel test repository <repo@invalid>"
    subprocess.run(
        [*gpg, "--quick-gen-key", uid, "ed25519", "sign", "never"], env=env, check=True, capture_output=True
    )
    keyring = gnupg / "repo.gpg"
    subprocess.run([*gpg, "--output", str(keyring), "--export"], env=env, check=True, capture_output=True)
    subprocess.run([*gpg, "--clearsign", "--output", str(served / "InRelease"), str(served / "Release")],
                   env=env, check=True, capture_output=True)  # fmt: skip
    listed = subprocess.run(
        [*gpg, "--list-keys", "--with-colons"], env=env, capture_output=True, text=True
    ).stdout
    fingerprint = next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:"))
    return keyring, fingerprint


def apt_options(work: Path, url: str, keyring: Path) -> list[str]:
    """apt-get -o settings for a private apt: this repository only, its own lists and cache."""
    for sub in ("lists/partial", "cache/archives/partial", "parts"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    sources = work / "sources.list"
    sources.write_text(f"deb [signed-by={keyring}] {url} ./\n")
    return [
        f"-oDir::Etc::SourceList={sources}",
        f"-oDir::Etc::SourceParts={work / 'parts'}",
        f"-oDir::State::Lists={work / 'lists'}",
        f"-oDir::Cache={work / 'cache'}",
        "-oAPT::Sandbox::User=root",
        "-oAcquire::Languages=none",
    ]
