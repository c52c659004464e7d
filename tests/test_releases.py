"""Releases side by side, the boot guard and staging: real folders, real venvs, real .deb files."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from gateway.cli.run import EXIT_BUSY
from gateway.releases import guard
from gateway.releases.install import install
from gateway.releases.package import download
from gateway.releases.probation import EXIT_ROLLBACK
from gateway.releases.state import (
    COMMITTED,
    FAILED,
    PROBATION,
    ROLLBACK_REQUESTED,
    ROLLED_BACK,
    UpdateState,
    read_state,
    state_path,
    write_state,
)
from gateway.releases.store import ReleaseError, ReleaseStore
from gateway.releases.updater import Origin, UpdatePolicy, stage, update
from tests.support import releases as rel

POLICY = UpdatePolicy(probation_s=5, max_boots=3, keep_releases=3)


def run_version(store: ReleaseStore, version: str | None = None) -> str:
    """What the release's own launcher says it is (its venv, its code; PYTHONPATH ignored)."""
    base = store.path(version) if version else store.current_link
    out = subprocess.run(
        [str(base / "venv/bin/python"), "-I", "-c", "import gateway; print(gateway.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture
def store(tmp_path: Path) -> ReleaseStore:
    s = ReleaseStore(tmp_path / "opt")
    install(s, rel.payload(tmp_path, "1.0.0"), source="test", site_packages=rel.SITE_PACKAGES)
    s.switch("1.0.0")
    s.commit("1.0.0")
    return s


def test_a_release_runs_its_own_code_and_the_launcher_ignores_pythonpath(
    store: ReleaseStore, tmp_path: Path
) -> None:
    install(store, rel.payload(tmp_path, "2.0.0"), source="test", site_packages=rel.SITE_PACKAGES)
    assert run_version(store, "2.0.0") == "2.0.0"
    assert run_version(store) == "1.0.0"  # installing beside it did not switch anything
    env = {**os.environ, "PYTHONPATH": str(rel.ROOT)}
    done = subprocess.run(
        [str(store.current_link / "bin/lintel"), "keys", "--help"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert store.versions() == ["1.0.0", "2.0.0"]


def test_an_installed_release_is_never_rewritten_and_a_half_install_never_looks_whole(
    store: ReleaseStore, tmp_path: Path
) -> None:
    marker = store.path("1.0.0") / "RELEASE"
    before = marker.read_bytes()
    with pytest.raises(ReleaseError, match="already installed"):
        install(store, rel.payload(tmp_path / "again", "1.0.0"), source="x", site_packages=rel.SITE_PACKAGES)
    assert marker.read_bytes() == before
    # a power cut mid-install: a partial folder, and a release folder whose RELEASE was never written
    (store.releases / ".partial-3.0.0" / "src").mkdir(parents=True)
    (store.releases / "4.0.0" / "src").mkdir(parents=True)
    assert store.versions() == ["1.0.0"]
    with pytest.raises(ReleaseError, match="not installed"):
        store.switch("4.0.0")
    install(store, rel.payload(tmp_path, "4.0.0"), source="t", site_packages=rel.SITE_PACKAGES)
    assert not (store.releases / ".partial-3.0.0").exists()
    assert run_version(store, "4.0.0") == "4.0.0"


def start(store: ReleaseStore, state_dir: Path) -> str | None:
    """One start of the service as systemd does it: the guard (ExecStartPre), then `current`."""
    verdict = guard.decide(store, state_dir)
    assert verdict.run == store.current()
    return verdict.run


def test_a_release_that_never_passes_probation_is_rolled_back_after_max_boots(
    store: ReleaseStore, tmp_path: Path
) -> None:
    state_dir = tmp_path / "var"
    state_dir.mkdir()
    install(store, rel.payload(tmp_path, "2.0.0"), source="t", site_packages=rel.SITE_PACKAGES)
    stage(store, state_dir, "2.0.0", POLICY, Origin())
    assert store.current() == "2.0.0" and store.committed() == "1.0.0"
    assert [start(store, state_dir) for _ in range(3)] == ["2.0.0"] * 3
    assert start(store, state_dir) == "1.0.0"  # the fourth start: it died three times
    state = read_state(state_dir)
    assert state is not None and state.phase == ROLLED_BACK and not state.reported
    assert state.reason is not None and "started 3 times without passing probation" in state.reason
    assert start(store, state_dir) == "1.0.0"
    assert run_version(store) == "1.0.0"


def test_starts_refused_for_a_busy_state_folder_are_not_counted_against_a_release_on_probation(
    store: ReleaseStore, tmp_path: Path
) -> None:
    """Another daemon holding the state folder (a manual `lintel run`, a demo on /var/lib/lintel)
    makes every start exit 75 through no fault of the release: those starts must not spend its
    `max_boots`, or a good release is rolled back as one that "never passed probation"."""
    from gateway.runtime.state_lock import lock_state_folder

    state_dir = tmp_path / "var"
    state_dir.mkdir()
    install(store, rel.payload(tmp_path, "2.0.0"), source="t", site_packages=rel.SITE_PACKAGES)
    stage(store, state_dir, "2.0.0", POLICY, Origin())
    other = lock_state_folder(state_dir)  # held as another process's would be (flock per open file)
    try:
        for _ in range(5):
            verdict = guard.decide(store, state_dir)
            assert verdict.run == "2.0.0" and "state folder busy" in verdict.did, verdict
    finally:
        other.release()
    state = read_state(state_dir)
    assert state is not None and state.phase == PROBATION and state.boots == 0, state
    assert [start(store, state_dir) for _ in range(3)] == ["2.0.0"] * 3  # its own starts still count
    assert start(store, state_dir) == "1.0.0"


def test_the_guard_finishes_whatever_a_power_cut_interrupted(store: ReleaseStore, tmp_path: Path) -> None:
    state_dir = tmp_path / "var"
    state_dir.mkdir()
    install(store, rel.payload(tmp_path, "2.0.0"), source="t", site_packages=rel.SITE_PACKAGES)
    base = UpdateState(PROBATION, "1.0.0", "2.0.0", 0, 5, 3)
    # staged: state written, the power went before the link moved
    write_state(state_dir, base)
    assert start(store, state_dir) == "2.0.0"
    # the new release asked for a rollback, the power went before the guard acted
    write_state(state_dir, base.but(phase=ROLLBACK_REQUESTED, reason="not connected"))
    assert start(store, state_dir) == "1.0.0"
    assert (s := read_state(state_dir)) is not None and s.phase == ROLLED_BACK and s.reason == "not connected"
    # the guard wrote rolled_back, the power went before the link moved back
    store.switch("2.0.0")
    assert start(store, state_dir) == "1.0.0"
    # committed by the new release: the guard moves `committed` to it
    write_state(state_dir, base.but(phase=COMMITTED))
    assert start(store, state_dir) == "2.0.0" and store.committed() == "2.0.0"
    # the current link deleted (or pointing at a release removed by hand): the committed release
    store.current_link.unlink()
    assert start(store, state_dir) == "2.0.0"
    # an unreadable state file is no update: the links stay as they are
    state_path(state_dir).write_text("{not json")
    assert start(store, state_dir) == "2.0.0"


def test_stage_refuses_while_an_update_is_on_probation(store: ReleaseStore, tmp_path: Path) -> None:
    state_dir = tmp_path / "var"
    state_dir.mkdir()
    for v in ("2.0.0", "3.0.0"):
        install(store, rel.payload(tmp_path, v), source="t", site_packages=rel.SITE_PACKAGES)
    with pytest.raises(ReleaseError, match="already running"):
        stage(store, state_dir, "1.0.0", POLICY, Origin())
    stage(store, state_dir, "2.0.0", POLICY, Origin())
    with pytest.raises(ReleaseError, match="still probation"):
        stage(store, state_dir, "3.0.0", POLICY, Origin())
    assert store.current() == "2.0.0"


def test_a_package_whose_sha256_differs_is_never_unpacked(store: ReleaseStore, tmp_path: Path) -> None:
    state_dir = tmp_path / "var"
    state_dir.mkdir()
    deb = rel.deb(tmp_path, "2.0.0")
    good = hashlib.sha256(deb.read_bytes()).hexdigest()
    wrong = hashlib.sha256(b"another package").hexdigest()
    with pytest.raises(ReleaseError, match="refused, not unpacked"):
        update(
            store,
            state_dir,
            POLICY,
            Origin("ops", "cmd-1"),
            deb=deb,
            sha256=wrong,
            site_packages=rel.SITE_PACKAGES,
        )
    assert store.versions() == ["1.0.0"] and store.current() == "1.0.0"
    assert not [p for p in store.root.iterdir() if p.name.startswith(".unpack-")]
    failed = read_state(state_dir)
    assert failed is not None and failed.phase == FAILED and failed.command_id == "cmd-1"
    assert failed.reason is not None and wrong in failed.reason
    staged = update(store, state_dir, POLICY, Origin(), deb=deb, sha256=good, site_packages=rel.SITE_PACKAGES)
    assert staged.phase == PROBATION and store.current() == "2.0.0"
    assert run_version(store) == "2.0.0"


def test_a_package_for_another_architecture_or_of_another_name_is_refused(
    store: ReleaseStore, tmp_path: Path
) -> None:
    deb = rel.deb(tmp_path, "2.0.0", arch="arm64")
    with pytest.raises(ReleaseError, match="is for arm64"):
        update(store, tmp_path, POLICY, Origin(), deb=deb, arch="amd64", site_packages=rel.SITE_PACKAGES)
    assert store.versions() == ["1.0.0"]


class _Counting(http.server.SimpleHTTPRequestHandler):
    hits: ClassVar[list[str]]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.hits.append(self.path)
        super().do_GET()


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    served = tmp_path / "www"
    served.mkdir()
    hits: list[str] = []
    handler = type("H", (_Counting,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0),
        lambda *a: handler(*a, directory=str(served)),  # type: ignore[misc]
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", served, hits
    server.shutdown()
    server.server_close()


def test_a_url_outside_the_allowed_prefixes_is_never_fetched_and_a_wrong_hash_is_deleted(
    http_dir: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    base, served, hits = http_dir
    (served / "pkg.deb").write_bytes(b"x" * 5000)
    sha = hashlib.sha256(b"x" * 5000).hexdigest()
    dest = tmp_path / "dl"
    with pytest.raises(ReleaseError, match=r"not under update\.allowed_urls"):
        download(base + "pkg.deb", sha, ["http://updates.example/"], dest, 10_000)
    assert hits == []
    with pytest.raises(ReleaseError, match="larger than"):
        download(base + "pkg.deb", sha, [base], dest, 4096)
    with pytest.raises(ReleaseError, match="deleted, not unpacked"):
        download(base + "pkg.deb", "0" * 64, [base], dest, 10_000)
    assert list(dest.iterdir()) == []
    got = download(base + "pkg.deb", sha, [base], dest, 10_000)
    assert got.read_bytes() == b"x" * 5000


def test_a_release_on_probation_that_refuses_the_config_asks_for_a_rollback_instead_of_exit_78(
    store: ReleaseStore, tmp_path: Path
) -> None:
    """Exit 78 stops systemd from restarting (RestartPreventExitStatus), so the guard would never run:
    a release on probation exits EXIT_ROLLBACK (10) instead, having asked for the rollback; not 75,
    which says "another daemon holds the state folder" or "may pass": a rollback reads as one."""
    state_dir = tmp_path / "var"
    state_dir.mkdir()
    install(store, rel.payload(tmp_path, "2.0.0"), source="t", site_packages=rel.SITE_PACKAGES)
    config = tmp_path / "lintel.toml"
    config.write_text(f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{state_dir}"\nunknown_key = 1\n')
    launcher = [str(store.current_link / "bin/lintel"), "run", "-c", str(config)]
    assert (
        subprocess.run(launcher, capture_output=True).returncode == 78
    )  # not on probation: a person fixes it
    stage(store, state_dir, "2.0.0", POLICY, Origin())
    assert guard.decide(store, state_dir).run == "2.0.0"
    done = subprocess.run(launcher, capture_output=True, text=True)
    assert done.returncode == EXIT_ROLLBACK != EXIT_BUSY, done.stderr
    state = read_state(state_dir)
    assert state is not None and state.phase == ROLLBACK_REQUESTED
    assert state.reason is not None and "refused the config" in state.reason and "unknown_key" in state.reason
    assert guard.decide(store, state_dir).run == "1.0.0"


def test_a_version_comes_from_the_operators_signed_apt_repository_and_a_tampered_one_is_refused(
    store: ReleaseStore, tmp_path: Path, http_dir: tuple[str, Path, list[str]]
) -> None:
    base, served, _hits = http_dir
    good, other = rel.deb(tmp_path, "2.0.0"), rel.deb(tmp_path, "3.0.0")
    keyring, _fpr = rel.apt_repository(served, [good, other], tmp_path / "gnupg")
    # after signing, 3.0.0's file is replaced on the server: the signed index no longer matches it
    (served / other.name).write_bytes(rel.deb(tmp_path / "evil", "3.0.0", "crash").read_bytes())
    state_dir = tmp_path / "var"
    state_dir.mkdir()
    policy = UpdatePolicy(5, 3, 3, apt_options=tuple(rel.apt_options(tmp_path / "apt", base, keyring)))
    with pytest.raises(ReleaseError) as refused:
        update(store, state_dir, policy, Origin(), version="3.0.0", site_packages=rel.SITE_PACKAGES)
    why = str(refused.value)
    assert why.startswith("apt-get download lintel=3.0.0 failed"), why
    assert any(s in why for s in ("Hash Sum mismatch", "unexpected size", "Hashes of expected file")), why
    assert store.versions() == ["1.0.0"]
    staged = update(store, state_dir, policy, Origin(), version="2.0.0", site_packages=rel.SITE_PACKAGES)
    assert staged.to_version == "2.0.0" and store.current() == "2.0.0"
    with pytest.raises(ReleaseError, match=r"apt-get download lintel=9\.9\.9 failed"):
        update(store, state_dir, policy, Origin(), version="9.9.9", site_packages=rel.SITE_PACKAGES)


def test_the_package_postinst_makes_a_first_release_current_and_stages_an_upgrade_on_probation(
    tmp_path: Path,
) -> None:
    """`release_tools.py activate` as postinst runs it (Debian's python3 in real life; here the venv's)."""
    from gateway.cli import release_tools

    root, state_dir, config = tmp_path / "opt", tmp_path / "var", tmp_path / "config.toml"
    state_dir.mkdir()
    config.write_text(
        f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{state_dir}"\n[update]\nprobation_s = 45\n'
    )

    def postinst(version: str) -> int:
        argv = [
            "activate",
            "--payload",
            str(rel.payload(tmp_path / f"pkg-{len(list(tmp_path.glob('pkg-*')))}", version)),
            "--config",
            str(config),
        ]
        return release_tools.main([*argv, "--root", str(root), "--site-packages", str(rel.SITE_PACKAGES)])

    store = ReleaseStore(root)
    assert postinst("1.0.0") == 0
    assert store.current() == store.committed() == "1.0.0" and read_state(state_dir) is None
    assert postinst("1.1.0") == 0  # apt upgrade: beside it, on probation with the config's [update]
    state = read_state(state_dir)
    assert state is not None and (state.phase, state.from_version, state.to_version) == (
        PROBATION,
        "1.0.0",
        "1.1.0",
    )
    assert state.probation_s == 45 and state.origin == "package"
    assert store.current() == "1.1.0" and store.committed() == "1.0.0"
    assert run_version(store, "1.0.0") == "1.0.0"  # the running release was not touched
    assert postinst("1.2.0") == 0  # another upgrade while 1.1.0 is on probation: installed, not switched
    assert store.current() == "1.1.0" and "1.2.0" in store.versions()
    marker = (store.path("1.2.0") / "RELEASE").read_bytes()
    assert postinst("1.2.0") == 0  # a reinstall: nothing rebuilt
    assert (store.path("1.2.0") / "RELEASE").read_bytes() == marker


def test_an_outcome_the_outbox_refused_is_offered_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk may refuse the `updated` event once: it is not marked reported, and comes again."""
    import asyncio

    from gateway.core import SystemClock
    from gateway.releases import probation

    monkeypatch.setattr(probation, "WATCH_S", 0.01)
    write_state(tmp_path, UpdateState(COMMITTED, "1.0.0", "2.0.0", 0, 10, 3))
    offered: list[str] = []

    def emit(event: object) -> bool:
        offered.append(event.kind)  # type: ignore[attr-defined]
        return len(offered) >= 2  # refused once, then accepted

    watch = probation.ReleaseProbation(tmp_path, "2.0.0", SystemClock())

    async def main() -> None:
        task = asyncio.create_task(watch.run(lambda: None, emit, lambda: None))  # type: ignore[arg-type, return-value]
        while len(offered) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(main())
    assert offered == ["updated", "updated"]
    state = read_state(tmp_path)
    assert state is not None and state.reported


def test_lintel_update_version_on_the_command_line_takes_it_from_apt(
    store: ReleaseStore, tmp_path: Path, http_dir: tuple[str, Path, list[str]]
) -> None:
    base, served, _hits = http_dir
    keyring, _fpr = rel.apt_repository(served, [rel.deb(tmp_path, "2.0.0")], tmp_path / "gnupg")
    state_dir = tmp_path / "var"
    config = tmp_path / "lintel.toml"
    config.write_text(f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{state_dir}"\n')
    apt = [f"--apt-option={o.removeprefix('-o')}" for o in rel.apt_options(tmp_path / "apt", base, keyring)]
    done = subprocess.run(
        [str(store.current_link / "bin/lintel"), "update", "--version", "2.0.0", "-c", str(config),
         "--root", str(store.root), "--no-restart", "--json",
         "--site-packages", str(rel.SITE_PACKAGES), *apt],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (
        answer["ok"] and answer["state"]["to_version"] == "2.0.0" and answer["state"]["phase"] == "probation"
    )
    assert store.current() == "2.0.0" and not list((state_dir / "updates").glob("*.deb"))


def test_lintel_releases_says_when_dpkg_names_another_version_than_the_running_release(
    store: ReleaseStore, tmp_path: Path
) -> None:
    """Issue 29 point 4 (README "What dpkg knows"): `lintel update` switches releases without dpkg,
    so dpkg names the package apt installed last; `lintel releases` puts both side by side."""
    install(store, rel.payload(tmp_path, "2.0.0"), source="test", site_packages=rel.SITE_PACKAGES)
    store.switch("2.0.0")
    admin = tmp_path / "dpkg"
    (admin / "updates").mkdir(parents=True)
    (admin / "status").write_text(
        "Package: lintel\nStatus: install ok installed\nVersion: 1.0.0\nArchitecture: amd64\n"
        "Maintainer: Lintel <lintel@invalid>\nDescription: test\n"
    )
    config = tmp_path / "lintel.toml"
    config.write_text(f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{tmp_path / "var"}"\n')
    releases = [
        str(store.current_link / "bin/lintel"),
        "releases",
        "-c",
        str(config),
        "--root",
        str(store.root),
    ]
    body = json.loads(
        subprocess.run([*releases, "--json", f"--admindir={admin}"], capture_output=True, text=True).stdout
    )
    assert (body["package_version"], body["current"]) == ("1.0.0", "2.0.0")
    said = subprocess.run([*releases, f"--admindir={admin}"], capture_output=True, text=True).stdout
    assert (
        "dpkg knows package lintel 1.0.0 (what apt installed last); the release running is 2.0.0"
        in " ".join(said.split())
    )
    (admin / "status").write_text("")  # not installed by dpkg at all (a checkout, a test)
    body = json.loads(
        subprocess.run([*releases, "--json", f"--admindir={admin}"], capture_output=True, text=True).stdout
    )
    assert body["package_version"] is None
