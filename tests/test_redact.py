"""One masking rule for URLs and secret keys, wherever a URL or config line is shown to a person."""

from __future__ import annotations

import pytest

from gateway.config.toml_errors import mask_secrets
from gateway.core.redact import is_secret_key, mask_url, mask_urls
from gateway.diagnostics.redact import redact_config

PASSWORD = "p@ss/w:rd"
# every way an installer writes credentials into a URL, with the secret each hides
CASES = [
    (f"rtsp://admin:{PASSWORD}@cam.local:554/stream", PASSWORD, "rtsp://admin:***@cam.local:554/stream"),
    ("mqtts://s3cr3t-token@broker:8883", "s3cr3t-token", "mqtts://***@broker:8883"),
    ("http://user:hunter2@host/snap.jpg", "hunter2", "http://user:***@host/snap.jpg"),
    ("https://a/b:c@host", "a/b:c", "https://***@host"),
]


@pytest.mark.parametrize(("url", "secret", "shown"), CASES)
def test_a_url_never_shows_its_secret(url: str, secret: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert secret not in mask_url(url)


def test_urls_inside_text_are_all_masked_and_the_rest_is_kept() -> None:
    text = f'camera "rtsp://admin:{PASSWORD}@cam/1" then mqtt://tok@b:1883, file:///tmp/a.mp4'
    assert mask_urls(text) == 'camera "rtsp://admin:***@cam/1" then mqtt://***@b:1883, file:///tmp/a.mp4'


def test_a_url_without_credentials_is_unchanged() -> None:
    for url in ("rtsp://cam.local:554/s", "/dev/video0", "file:///srv/clip.mp4", "mqtt://b"):
        assert mask_url(url) == url


@pytest.mark.parametrize(("url", "secret", "shown"), CASES)
def test_every_place_that_shows_a_url_uses_the_one_rule(url: str, secret: str, shown: str) -> None:
    from drivers.camera.config import redact as camera_redact

    assert camera_redact(url) == shown
    assert mask_secrets(f'url = "{url}"') == f'url = "{shown}"'
    assert redact_config({"mqtt": {"url": url}}) == {"mqtt": {"url": shown}}


def test_secret_keys_are_told_from_the_files_that_hold_them() -> None:
    for key in ("password", "bindkey", "api_token", "key", "psk", "private_key", "client_secret"):
        assert is_secret_key(key), key
    for key in ("password_file", "key_file", "url", "id", "keyboard", "monkey_count"):
        assert not is_secret_key(key), key
    assert mask_secrets('bindkey = "00112233445566778899aabbccddeeff"') == "bindkey = ***"
    assert redact_config({"password": "x", "password_file": "/etc/p"}) == {
        "password": "<redacted>",
        "password_file": "/etc/p",
    }


def test_a_support_bundle_scrubs_the_whole_password_even_with_an_at_sign_in_it() -> None:
    from gateway.diagnostics.redact import inline_secrets

    raw = {"sources": [{"url": f"rtsp://admin:{PASSWORD}@cam/1"}], "mqtt": {"url": "mqtts://tok-123@b"}}
    assert sorted(inline_secrets(raw)) == sorted([PASSWORD, "tok-123"])
