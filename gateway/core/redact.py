"""What may never be printed: credentials inside URLs and the values of secret-looking keys.

One rule for every place that shows a URL or a config line to a person (config errors, logs,
camera diagnostics, support bundles), so that a password never appears in one of them because
another masker was written differently.

- A URL's credentials are everything between `scheme://` and the **last** `@` of the URL: a
  password written with an unescaped `@` or `/` in it (`rtsp://admin:p@ss/w@cam`) is still all
  hidden (over-masking a path that holds an `@` is the safe error).
- The user name stays when there is a `user:password` pair (it tells a technician which account
  is configured); credentials with no `:` are a token (`https://TOKEN@host`) and are hidden whole.
"""

from __future__ import annotations

import re

MASK = "***"
# a URL inside free text runs to the next whitespace or quote
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>[^\s\"'<>]*)")
# config keys whose values are secrets; `*_file` keys name files and are not secrets themselves
_SECRET_KEY = re.compile(r"pass|secret|token|bindkey|psk|private|(^|_)key$", re.IGNORECASE)


def _split(rest: str) -> tuple[str | None, str, str] | None:
    """(user or None, secret, host…) of a URL's part after `scheme://`; None without credentials."""
    creds, at, host = rest.rpartition("@")
    if not at:
        return None
    user, colon, password = creds.partition(":")
    if colon and "/" not in user:
        return user, password, host
    return None, creds, host


def _mask_rest(rest: str) -> str:
    parts = _split(rest)
    if parts is None:
        return rest
    user, _, host = parts
    return f"{user}:{MASK}@{host}" if user is not None else f"{MASK}@{host}"


def mask_url(url: str) -> str:
    """`url` with its credentials masked (see the module's rule); a URL without any is unchanged."""
    return mask_urls(url)


def mask_urls(text: str) -> str:
    """`text` with the credentials of every URL in it masked."""
    return _URL.sub(lambda m: m["scheme"] + _mask_rest(m["rest"]), text)


def url_secrets(text: str) -> list[str]:
    """The secrets (passwords, tokens) written inside the URLs of `text`, as written."""
    found = (_split(m["rest"]) for m in _URL.finditer(text))
    return [parts[1] for parts in found if parts is not None and parts[1]]


def is_secret_key(name: str) -> bool:
    """True for a config key whose value is a secret (`password`, `bindkey`, `api_token`, `key`),
    false for the `*_file` keys that only name where a secret is kept."""
    return not name.endswith("_file") and bool(_SECRET_KEY.search(name))
