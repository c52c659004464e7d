"""face+tag without a camera: the second factor's verdicts (gateway/lanes/faces/second_factor.py),
residents' tags sealed in the gallery (tag_store.py) and the gallery's format 2 migration, the
config's errors for face+tag. The whole path through `lintel run` is tests/test_face_tag_process.py."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gateway.core.clock import ManualClock
from gateway.core.tags import TagHub, TagSighting, Verdict
from gateway.lanes.faces.gallery import Gallery, GalleryError, Resident
from gateway.lanes.faces.gallery_file import FORMAT
from gateway.lanes.faces.second_factor import TagCheck
from gateway.lanes.faces.tag_store import ResidentTag, remove_tag, set_tag, tags
from tests.support.process import lintel_output
from tests.test_config import FACE_BASE, problems

HIS = ResidentTag("r-0412", "3C:2E:F5:0A:11:7B", bytes(range(16)))
HERS = ResidentTag("r-0533", "3C:2E:F5:0A:22:9C", bytes(range(16, 32)))


def check(clock: ManualClock, hub: TagHub, known: dict[str, ResidentTag]) -> TagCheck:
    return TagCheck(hub, "ble-lobby", 10.0, clock.monotonic, lambda: known)


def heard(hub: TagHub, tag: ResidentTag, verdict: Verdict, at: float, source: str = "ble-lobby") -> None:
    hub.heard(TagSighting(source, tag.address, verdict, at))


@pytest.fixture
def setup() -> tuple[ManualClock, TagHub, TagCheck]:
    clock = ManualClock()
    hub = TagHub()
    hub.watch({HIS.address: HIS.key, HERS.address: HERS.key})
    return clock, hub, check(clock, hub, {HIS.resident_id: HIS, HERS.resident_id: HERS})


def test_a_fresh_advert_of_his_own_tag_within_the_window_passes(setup: tuple) -> None:
    clock, hub, factor = setup
    now = clock.monotonic()
    heard(hub, HIS, "fresh", now - 9.5)
    assert factor("r-0412") is None
    clock.advance(1.0)  # now 10.5 s old: too old
    assert factor("r-0412") == "tag_not_heard"


@pytest.mark.parametrize(
    ("verdicts", "reason"),
    [
        ([], "tag_not_heard"),
        (["plaintext"], "tag_plaintext"),
        (["replayed"], "tag_replayed"),
        (["plaintext", "replayed", "wrong_key"], "tag_replayed"),  # the most telling first
        (["wrong_key"], "tag_wrong_key"),
        (["malformed"], "tag_malformed"),
        (["replayed", "fresh"], None),  # his fob is here (someone also replays: the face decides)
    ],
)
def test_anything_but_a_fresh_advert_is_refused_with_its_reason(
    setup: tuple, verdicts: list[Verdict], reason: str | None
) -> None:
    clock, hub, factor = setup
    for i, verdict in enumerate(verdicts):
        heard(hub, HIS, verdict, clock.monotonic() - 5 + i)
    assert factor("r-0412") == reason


def test_another_residents_tag_or_another_adapter_does_not_count(setup: tuple) -> None:
    clock, hub, factor = setup
    heard(hub, HERS, "fresh", clock.monotonic() - 1)
    assert factor("r-0412") == "tag_of_another_resident"
    heard(hub, HIS, "fresh", clock.monotonic() - 1, source="ble-garage")  # heard, but not at this door
    assert factor("r-0412") == "tag_of_another_resident"
    assert factor("r-0999") == "no_tag_enrolled"
    clock.advance(10.0)  # her fob was heard 11 s ago: no longer "just now"
    assert factor("r-0412") == "tag_not_heard"


def test_an_unwatched_address_is_never_kept() -> None:
    hub = TagHub()
    hub.heard(TagSighting("ble-lobby", HIS.address, "fresh", 1.0))
    assert hub.sightings(HIS.address, "ble-lobby", 0) == []


def enrolled(tmp_path: Path) -> Gallery:
    gallery = Gallery(tmp_path / "faces.db", tmp_path / "faces.key", create=True)
    for rid in ("r-0412", "r-0533"):
        gallery.enroll(
            Resident(rid, "3-1202", "resident", "form", 1), [np.ones(128, np.float32)], "m", [{}], 1
        )
    return gallery


def test_tags_are_sealed_replaced_and_deleted_with_the_resident(tmp_path: Path) -> None:
    gallery = enrolled(tmp_path)
    generation = gallery.generation()
    set_tag(gallery, "r-0412", "3c-2e-f5-0a-11-7b", HIS.key, 5)
    assert gallery.generation() > generation  # the running gateway reloads and listens for it
    assert tags(gallery) == {"r-0412": HIS}
    with pytest.raises(GalleryError, match="already belongs to resident r-0412"):
        set_tag(gallery, "r-0533", HIS.address, HERS.key, 6)
    with pytest.raises(GalleryError, match="enrol the face first"):
        set_tag(gallery, "r-0999", HERS.address, HERS.key, 6)
    with pytest.raises(GalleryError, match="not a Bluetooth address"):
        set_tag(gallery, "r-0533", "3C:2E:F5", HERS.key, 6)
    set_tag(gallery, "r-0533", HERS.address, HERS.key, 7)
    assert "key=…" in repr(HIS) and HIS.key.hex() not in repr(HIS)
    data = b"".join(p.read_bytes() for p in tmp_path.glob("faces.db*"))
    for tag in (HIS, HERS):
        assert tag.address.encode() not in data and tag.key not in data and tag.key.hex().encode() not in data
    assert remove_tag(gallery, "r-0533") and not remove_tag(gallery, "r-0533")
    assert gallery.delete("r-0412") == 1
    assert tags(gallery) == {}
    gallery.close()


def test_a_format_1_gallery_gains_the_tags_table_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    gallery = enrolled(tmp_path)
    gallery.close()
    db = sqlite3.connect(tmp_path / "faces.db")  # as a release before tags left it
    db.execute("DROP TABLE tags")
    db.execute("PRAGMA user_version = 0")
    db.commit()
    db.close()
    gallery = Gallery(tmp_path / "faces.db", tmp_path / "faces.key")
    assert [r.id for r in gallery.residents()] == ["r-0412", "r-0533"] and tags(gallery) == {}
    set_tag(gallery, "r-0412", HIS.address, HIS.key, 5)
    assert gallery.db.execute("PRAGMA user_version").fetchone() == (FORMAT,) == (2,)
    gallery.db.execute(f"PRAGMA user_version = {FORMAT + 1}")
    gallery.close()
    with pytest.raises(GalleryError, match="gallery format 3, written by a newer Lintel"):
        Gallery(tmp_path / "faces.db", tmp_path / "faces.key")


BLE = '[[sources]]\nid = "ble-lobby"\ntype = "ble"\n'
ENTRANCE = '[[face_access]]\nid = "f1"\ncamera = "cam-door"\ndoor = "lobby"\n'


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            'require = "face+pin"\n',
            "face_access[0].require: not an allowed value (got \"face+pin\"); expected one of: 'face' or "
            "'face+tag'",
        ),
        (
            'require = "face+tag"\n',
            "face_access[0].tag_source: face+tag needs the BLE adapter that hears the tags (got nothing); "
            'expected tag_source = "<id of a [[sources]] entry of type ble at this door>", '
            'or require = "face"',
        ),
        (
            'require = "face+tag"\ntag_source = "ble-lobb"\n',
            'face_access[0].tag_source: unknown BLE source (got "ble-lobb"); expected the id of a '
            '[[sources]] entry of type ble (ble-lobby) - did you mean "ble-lobby"?',
        ),
        (
            'require = "face+tag"\ntag_source = "cam-door"\n',  # a source, but not a BLE adapter
            'face_access[0].tag_source: unknown BLE source (got "cam-door")',
        ),
        ('require = "face+tag"\ntag_source = "ble-lobby"\ntag_window_s = 0\n', "face_access[0].tag_window_s"),
    ],
)
def test_bad_face_tag_config_names_key_value_and_fix(extra: str, expected: str) -> None:
    found = problems(FACE_BASE + BLE + ENTRANCE + extra)
    assert any(p.startswith(expected) for p in found), found


def test_lintel_run_refuses_face_tag_without_its_adapter_with_78(tmp_path: Path) -> None:
    config = tmp_path / "lintel.toml"
    base = FACE_BASE.replace('site = "site-a"', f'site = "site-a"\nstate_dir = "{tmp_path}"')
    config.write_text(base + ENTRANCE + 'require = "face+tag"\ntag_source = "ble-lobby"\n')  # no BLE source
    run = lintel_output("run", "-c", str(config))
    assert run.returncode == 78, run.stdout + run.stderr
    assert 'face_access[0].tag_source: unknown BLE source (got "ble-lobby")' in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_a_face_tag_entrance_is_valid_config() -> None:
    from gateway.config import parse_config

    text = FACE_BASE + BLE + ENTRANCE + 'require = "face+tag"\ntag_source = "ble-lobby"\n'
    entrance = parse_config(text.encode(), "t.toml").config.face_access[0]
    assert (entrance.require, entrance.tag_source, entrance.tag_window_s) == ("face+tag", "ble-lobby", 10)
    assert json.dumps(entrance.model_dump())  # plain data


def test_a_tag_source_without_face_tag_is_a_warning() -> None:
    from gateway.config import parse_config

    text = FACE_BASE + BLE + ENTRANCE + 'tag_source = "ble-lobby"\n'
    config = parse_config(text.encode(), "t.toml").config
    assert config.faces.warnings(config.face_access) == [
        'face_access[0].tag_source: set, but require is "face": f1 opens without the tag; '
        'set require = "face+tag" (or remove tag_source)'
    ]
    text += 'require = "face+tag"\n'
    config = parse_config(text.encode(), "t.toml").config
    assert config.faces.warnings(config.face_access) == []
