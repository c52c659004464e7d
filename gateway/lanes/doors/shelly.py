"""A door relay on a Shelly Gen2 device (Plus/Pro/Gen3), over its local HTTP RPC.

Each call is one JSON-RPC 2.0 request POSTed to `/rpc`. A pulse is
`Switch.Set {"id": switch, "on": true, "toggle_after": seconds}`: the device starts its own
flip-back timer, so the door is released even if the gateway is killed right after the request
(`hardware_timed` is True). `switch(False)` is `Switch.Set {"id": switch, "on": false}`.

Authentication (when a password is set on the device): the device answers 401 with a
`WWW-Authenticate: Digest ...` challenge (realm = the device id, a nonce, algorithm SHA-256); the
request is sent again with an `auth` object in its body:
`response = SHA256(ha1:nonce:nc:cnonce:auth:ha2)`, `ha1 = SHA256(admin:realm:password)`,
`ha2 = SHA256(dummy_method:dummy_uri)`, nc = 1 (a fresh challenge per HTTP request).
The password never appears in a message, a log line or `repr`.

Pinning: the challenge's realm is the device's id. A challenge whose realm is not the configured
`device_id` gets no answer (RelayError, nothing sent): a rogue or replaced device on the relay's
address never receives a digest response to attack offline. With `mac` pinned too, the first
challenge (and one every `IDENTITY_TTL_S` after) is answered only once `Shelly.GetDeviceInfo`
(unauthenticated) names the pinned id and MAC. (An impostor that copies the id
defeats this, as it would any check over plain HTTP: the relay's LAN must be isolated.)

Readback: after a pulse is acknowledged, `Switch.GetStatus` must show the switch on (or its
timer already run out). A device that acknowledges and does not switch (a `was_on` reply that
lies, a faulty relay) raises `RelayDisagrees`, which the doors lane reports as `door_relay_fault`.

Replies are hostile input: bounded in size (gateway/lanes/doors/http.py), the JSON-RPC frame checked
(same id, `result` an object, `was_on` present for Switch.Set); a device error becomes a
RelayError carrying the device's own message (shortened, control characters removed).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
import secrets
from typing import Any

from gateway.lanes.doors.config import ShellyGen2Relay
from gateway.lanes.doors.http import HttpError, Reply, post_json
from gateway.lanes.doors.relays import RelayDisagrees, RelayError

_USER = "admin"  # Shelly Gen2 devices have this one user
_HA2 = hashlib.sha256(b"dummy_method:dummy_uri").hexdigest()
_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')
_IDS = itertools.count(1)
IDENTITY_TTL_S = 300.0  # how long a GetDeviceInfo that matched the pins is trusted


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _shown(text: object, limit: int = 160) -> str:
    """A device-supplied string made safe for a message: printable and short."""
    clean = "".join(c if c.isprintable() else "?" for c in str(text))
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def parse_challenge(header: str) -> dict[str, str]:
    """The parameters of a `Digest k="v", k=v` challenge (names lower-cased)."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    return {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }


def auth_object(challenge: dict[str, str], password: str, cnonce: int, nc: int = 1) -> dict[str, Any]:
    """The JSON-RPC `auth` object answering a digest challenge (see the module docstring)."""
    realm, nonce = challenge["realm"], challenge["nonce"]
    ha1 = _sha256(f"{_USER}:{realm}:{password}")
    response = _sha256(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{_HA2}")
    return {
        "realm": realm,
        "username": _USER,
        "nonce": int(nonce) if nonce.isdecimal() and nonce.isascii() else nonce,
        "cnonce": cnonce,
        "response": response,
        "algorithm": "SHA-256",
    }


class ShellyRelay:
    """One switch of a Shelly Gen2 device. `password` is read by the caller from `password_file`."""

    hardware_timed = True

    def __init__(self, config: ShellyGen2Relay, password: str | None = None) -> None:
        self.config = config
        self._password = password or None
        self._identity_checked_at: float | None = None

    def __repr__(self) -> str:
        return f"ShellyRelay({self.config.url}, switch={self.config.switch})"

    async def switch(self, on: bool) -> None:
        await self._switch_set({"id": self.config.switch, "on": on})

    async def timed_pulse(self, seconds: float) -> None:
        # toggle_after takes fractional seconds; a zero or tiny timer would be no pulse at all.
        toggle_after = max(0.1, round(seconds, 3))
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await self._switch_set({"id": self.config.switch, "on": True, "toggle_after": toggle_after})
        status = await self.status()
        if status.get("output") is not True and loop.time() - sent < toggle_after:
            raise RelayDisagrees(
                f"{self.config.url}: the device acknowledged the pulse but reports switch "
                f"{self.config.switch} off: it did not switch (a faulty relay, or not the device)"
            )

    async def device_info(self) -> dict[str, Any]:
        """`Shelly.GetDeviceInfo` (answered without authentication: `id`, `mac`, `model`, `gen`)."""
        return await self.call("Shelly.GetDeviceInfo", {})

    async def status(self) -> dict[str, Any]:
        """`Switch.GetStatus` of this switch (`output` is whether the relay is on)."""
        return await self.call("Switch.GetStatus", {"id": self.config.switch})

    def wiring(self) -> dict[str, Any]:
        return {"type": "shelly_gen2", "url": self.config.url, "switch": self.config.switch}

    async def _switch_set(self, params: dict[str, Any]) -> None:
        result = await self.call("Switch.Set", params)
        if "was_on" not in result:
            raise RelayError(f"{self.config.url}: Switch.Set reply without was_on")

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One RPC, authenticated when the device asks; its `result` object, or RelayError."""
        cfg = self.config
        try:
            async with asyncio.timeout(cfg.timeout_ms / 1000):
                return await self._call(method, params)
        except TimeoutError:
            raise RelayError(f"{cfg.url}: no answer within {cfg.timeout_ms} ms") from None
        except HttpError as exc:
            raise RelayError(f"{cfg.url}: {exc}") from None

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": next(_IDS), "src": "lintel", "method": method}
        request["params"] = params
        reply = await post_json(cfg.host, cfg.port, "/rpc", request)
        if reply.status == 401:
            if self._password is None:
                raise RelayError(f"{cfg.url}: the device asks for a password (set password_file)")
            challenge = parse_challenge(reply.headers.get("www-authenticate", ""))
            if challenge.get("algorithm", "SHA-256").upper() != "SHA-256" or not {"realm", "nonce"} <= set(
                challenge
            ):
                raise RelayError(f"{cfg.url}: authentication failed: unsupported challenge")
            if cfg.device_id is not None and challenge["realm"] != cfg.device_id:
                raise RelayError(
                    f"{cfg.url}: the device asking for the password is {_shown(challenge['realm'], 64)!r}, "
                    f"not {cfg.device_id!r} (device_id): no credentials sent"
                )
            await self._check_identity()
            request["auth"] = auth_object(challenge, self._password, secrets.randbelow(1 << 31) + 1)
            reply = await post_json(cfg.host, cfg.port, "/rpc", request)
            if reply.status == 401:
                raise RelayError(f"{cfg.url}: authentication failed (wrong password?)")
        return self._result(reply, request["id"])

    async def _check_identity(self) -> None:
        """With `mac` pinned: the device must name the pinned id and MAC before it gets credentials."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        checked = self._identity_checked_at
        if cfg.mac is None or (checked is not None and loop.time() - checked < IDENTITY_TTL_S):
            return
        request_id = next(_IDS)
        request = {"jsonrpc": "2.0", "id": request_id, "src": "lintel", "method": "Shelly.GetDeviceInfo"}
        info = self._result(await post_json(cfg.host, cfg.port, "/rpc", request), request_id)
        if info.get("id") != cfg.device_id or str(info.get("mac", "")).upper() != cfg.mac:
            raise RelayError(
                f"{cfg.url}: the device there says it is {_shown(info.get('id'), 64)!r} with MAC "
                f"{_shown(info.get('mac'), 20)!r}, not the pinned device_id and mac: no credentials sent"
            )
        self._identity_checked_at = loop.time()

    def _result(self, reply: Reply, request_id: int) -> dict[str, Any]:
        url = self.config.url
        try:
            frame = json.loads(reply.body)
        except (UnicodeDecodeError, ValueError):
            frame = None
        if not isinstance(frame, dict):
            raise RelayError(f"{url}: HTTP {reply.status} with no JSON-RPC reply")
        error = frame.get("error")
        if error is None and {"code", "message"} <= frame.keys() and "result" not in frame:
            error = frame  # a bare error object, as the device sends with HTTP 400/500
        if error is not None:
            if isinstance(error, dict):
                raise RelayError(
                    f"{url}: device error {_shown(error.get('code'))}: {_shown(error.get('message'))}"
                )
            raise RelayError(f"{url}: device error {_shown(error)}")
        if reply.status != 200:
            raise RelayError(f"{url}: HTTP {reply.status}")
        if frame.get("id") != request_id:
            raise RelayError(f"{url}: reply to another request (id {_shown(frame.get('id'))})")
        result = frame.get("result")
        if not isinstance(result, dict):
            raise RelayError(f"{url}: reply without a result object")
        return result
