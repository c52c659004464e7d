"""scripts/fetch_sdist.py against a registry of our own on loopback (PEP 691 JSON index + file):
a pinned archive's members are extracted; a tampered archive or a mismatching listing is refused
before anything is extracted; nothing in the archive is ever run (pip would run its setup.py)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def sdist(marker: Path) -> bytes:
    """An archive whose setup.py would leave `marker` behind if anything ran it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in [
            ("demo-1.0/setup.py", f"open({str(marker)!r}, 'w').write('ran')\n".encode()),
            ("demo-1.0/tests/photo.jpg", b"\xff\xd8 a photograph"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[str, dict[str, bytes], dict[str, str]]]:
    files: dict[str, bytes] = {}
    listed: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/simple/demo/":
                base = f"http://127.0.0.1:{server.server_port}/files/"
                body = json.dumps(
                    {
                        "files": [
                            {"filename": n, "url": base + n, "hashes": {"sha256": listed[n]}} for n in files
                        ]
                    }
                ).encode()
            elif self.path.startswith("/files/") and self.path[7:] in files:
                body = files[self.path[7:]]
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/simple", files, listed
    server.shutdown()


def run(index: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fetch_sdist.py"), *args],
        env={**os.environ, "PIP_INDEX_URL": index},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_pinned_archive_is_extracted_and_never_run(tmp_path: Path, registry: tuple) -> None:
    index, files, listed = registry
    marker = tmp_path / "setup-ran"
    data = sdist(marker)
    files["demo-1.0.tar.gz"] = data
    listed["demo-1.0.tar.gz"] = pin = hashlib.sha256(data).hexdigest()
    out = run(index, "demo-1.0.tar.gz", pin, str(tmp_path / "media"), "tests/photo.jpg")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "media" / "photo.jpg").read_bytes() == b"\xff\xd8 a photograph"
    assert not marker.exists() and not (tmp_path / "media" / "setup.py").exists()


def test_a_tampered_archive_is_refused_before_extraction(tmp_path: Path, registry: tuple) -> None:
    index, files, listed = registry
    good = sdist(tmp_path / "never")
    pin = hashlib.sha256(good).hexdigest()
    files["demo-1.0.tar.gz"] = sdist(tmp_path / "other")  # another archive under the same name
    listed["demo-1.0.tar.gz"] = pin  # ... even listed with the pinned hash
    out = run(index, "demo-1.0.tar.gz", pin, str(tmp_path / "media"), "tests/photo.jpg")
    assert out.returncode != 0 and "pinned" in out.stderr and "refused" in out.stderr
    assert not (tmp_path / "media").exists()
    listed["demo-1.0.tar.gz"] = "0" * 64  # the registry itself lists another hash
    out = run(index, "demo-1.0.tar.gz", pin, str(tmp_path / "media"), "tests/photo.jpg")
    assert out.returncode != 0 and "registry lists" in out.stderr


def archive(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_folder_member_keeps_one_folder_per_person(tmp_path: Path, registry: tuple) -> None:
    index, files, listed = registry
    data = archive(
        [
            ("demo-1.0/setup.py", b"raise SystemExit"),
            ("demo-1.0/johns/John_A/1.jpg", b"a1"),
            ("demo-1.0/johns/John_A/2.jpg", b"a2"),
            ("demo-1.0/johns/John_B/1.jpg", b"b1"),
            ("demo-1.0/other/1.jpg", b"not wanted"),
        ]
    )
    files["demo-1.0.tar.gz"] = data
    listed["demo-1.0.tar.gz"] = pin = hashlib.sha256(data).hexdigest()
    out = run(index, "demo-1.0.tar.gz", pin, str(tmp_path / "media"), "johns/")
    assert out.returncode == 0, out.stderr
    media = tmp_path / "media"
    got = {str(p.relative_to(media)): p.read_bytes() for p in media.rglob("*.jpg")}
    assert got == {"John_A/1.jpg": b"a1", "John_A/2.jpg": b"a2", "John_B/1.jpg": b"b1"}
    out = run(index, "demo-1.0.tar.gz", pin, str(tmp_path / "none"), "missing/")
    assert out.returncode != 0 and "holds no file" in out.stderr


def test_a_folder_member_never_writes_outside_the_destination(tmp_path: Path, registry: tuple) -> None:
    index, files, listed = registry
    data = archive([("demo-1.0/johns/../../escaped.jpg", b"x"), ("demo-1.0/johns/ok.jpg", b"y")])
    files["demo-1.0.tar.gz"] = data
    listed["demo-1.0.tar.gz"] = pin = hashlib.sha256(data).hexdigest()
    out = run(index, "demo-1.0.tar.gz", pin, str(tmp_path / "media"), "johns/")
    assert out.returncode != 0 and "outside the destination" in out.stderr
    assert not (tmp_path / "escaped.jpg").exists() and not (tmp_path / "media" / "ok.jpg").exists()
