"""A simulated Shelly Gen2 relay device: its local HTTP RPC, for the tests, the benchmark and demos.

It answers `POST /rpc` with JSON-RPC frames like the real device (`{"id", "src", "result"}` or
`{"id", "src", "error": {"code", "message"}}`) for:
- `Switch.Set {"id", "on", "toggle_after"?}` -> `{"was_on"}`; with `toggle_after` the switch flips
  back by itself after that many seconds, on the server's own timer, whatever the client does;
- `Switch.GetStatus {"id"}` -> `{"id", "output", "source", "timer_started_at"?, "timer_duration"?}`;
- `Shelly.GetDeviceInfo` -> `{"id", "mac", "model", "gen", "auth_en", "auth_domain"}`, answered
  without authentication as the real device does.
With a `password`, every other RPC must carry a valid `auth` object (SHA-256 digest, realm =
`device_id`, user "admin"); otherwise the reply is HTTP 401 with a `WWW-Authenticate: Digest`
challenge. `auth_attempts` counts requests that carried an `auth` object (what a rogue device
playing this one would have captured).

`switches` logs every output change as (monotonic time, switch id, on). `fault` makes the device
misbehave on purpose: "silent" (reads the request, never answers), "error" (an RPC error),
"garbage" (not JSON), "oversize" (a body far over any sane reply), "no_was_on" (a result without
`was_on`), "was_on_lie" (acknowledges Switch.Set with `was_on: false` and does not switch).
`stop()` makes it unreachable (connection refused).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from typing import Any

_HA2 = hashlib.sha256(b"dummy_method:dummy_uri").hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class SimulatedShelly:
    def __init__(
        self,
        *,
        switches: int = 1,
        password: str | None = None,
        device_id: str = "shellypro1-0c8b95f2e1a4",
        mac: str = "0C8B95F2E1A4",
        port: int = 0,
    ):
        self.device_id = device_id
        self.mac = mac
        self.auth_attempts = 0
        self.password = password
        self.fault: str | None = None
        self.outputs = [False] * switches
        self.switches: list[tuple[float, int, bool]] = []
        self.requests = 0
        self.auth_failures = 0
        self.port = port
        self._timers: dict[int, tuple[asyncio.TimerHandle, float, float]] = {}
        self._nonces: set[int] = set()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stop listening (the device is unreachable); running flip-back timers still fire."""
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):  # a "silent" exchange would hold wait_closed (3.12+)
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    # -- the switch -------------------------------------------------------------------------------
    def _set(self, switch: int, on: bool, toggle_after: float | None) -> bool:
        was_on = self.outputs[switch]
        if timer := self._timers.pop(switch, None):
            timer[0].cancel()
        self.outputs[switch] = on
        self.switches.append((time.monotonic(), switch, on))
        if toggle_after is not None:
            handle = asyncio.get_running_loop().call_later(toggle_after, self._flip_back, switch)
            self._timers[switch] = (handle, time.time(), toggle_after)
        return was_on

    def _flip_back(self, switch: int) -> None:
        self._timers.pop(switch, None)
        self.outputs[switch] = not self.outputs[switch]
        self.switches.append((time.monotonic(), switch, self.outputs[switch]))

    # -- RPC --------------------------------------------------------------------------------------
    def _rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "Shelly.GetDeviceInfo":
            return {
                "id": self.device_id,
                "mac": self.mac,
                "model": "SPSW-001XE16EU",
                "gen": 2,
                "auth_en": self.password is not None,
                "auth_domain": self.device_id if self.password is not None else None,
            }
        switch = params.get("id")
        if method not in ("Switch.Set", "Switch.GetStatus"):
            raise _RpcError(404, f"No handler for {method}")
        if not isinstance(switch, int) or isinstance(switch, bool) or not 0 <= switch < len(self.outputs):
            raise _RpcError(-105, f"Argument 'id', value {switch} not found!")
        if method == "Switch.GetStatus":
            status: dict[str, Any] = {"id": switch, "source": "HTTP", "output": self.outputs[switch]}
            if timer := self._timers.get(switch):
                status["timer_started_at"], status["timer_duration"] = timer[1], timer[2]
            return status
        on, toggle_after = params.get("on"), params.get("toggle_after")
        if not isinstance(on, bool):
            raise _RpcError(-103, "Missing required argument 'on'!")
        if toggle_after is not None and (
            isinstance(toggle_after, bool) or not isinstance(toggle_after, int | float) or toggle_after <= 0
        ):
            raise _RpcError(-103, "Invalid argument 'toggle_after'!")
        if self.fault == "was_on_lie" and on:
            return {"was_on": False}
        return {"was_on": self._set(switch, on, toggle_after)}

    def _authorised(self, auth: Any) -> bool:
        if self.password is None:
            return True
        if (
            not isinstance(auth, dict)
            or auth.get("realm") != self.device_id
            or auth.get("username") != "admin"
        ):
            return False
        nonce, cnonce, nc = auth.get("nonce"), auth.get("cnonce"), auth.get("nc", 1)
        if nonce not in self._nonces or auth.get("algorithm", "SHA-256") != "SHA-256":
            return False
        ha1 = _sha256(f"admin:{self.device_id}:{self.password}")
        expected = _sha256(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{_HA2}")
        return secrets.compare_digest(str(auth.get("response", "")), expected)

    # -- HTTP -------------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            self.requests += 1
            if self.fault == "silent":
                await asyncio.sleep(3600)
                return
            status, headers, payload = self._answer(head.split(b" ", 2)[:2], body)
            out = f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Length: {len(payload)}\r\n"
            out += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(out.encode() + b"Connection: close\r\n\r\n" + payload)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    def _answer(self, request_line: list[bytes], body: bytes) -> tuple[int, dict[str, str], bytes]:
        json_type = {"Content-Type": "application/json"}
        if request_line != [b"POST", b"/rpc"]:
            return 404, {}, b""
        try:
            frame = json.loads(body)
            assert isinstance(frame, dict) and isinstance(frame.get("method"), str)
        except (ValueError, AssertionError):
            return 400, json_type, b'{"code":-103,"message":"Bad request"}'
        if "auth" in frame:
            self.auth_attempts += 1
        if frame["method"] != "Shelly.GetDeviceInfo" and not self._authorised(frame.get("auth")):
            if "auth" in frame:
                self.auth_failures += 1
            nonce = secrets.randbelow(1 << 31) + 1
            self._nonces.add(nonce)
            challenge = f'Digest qop="auth", realm="{self.device_id}", nonce="{nonce}", algorithm=SHA-256'
            return 401, {"WWW-Authenticate": challenge}, b""
        reply: dict[str, Any] = {"id": frame.get("id"), "src": self.device_id}
        if self.fault == "garbage":
            return 200, json_type, b"<html>\x00\xff not json"
        if self.fault == "oversize":
            return 200, json_type, b'{"id":1,"result":{"pad":"' + b"x" * 1_000_000 + b'"}}'
        try:
            if self.fault == "error":
                raise _RpcError(-109, "Switch is overheated\x1b[31m, output disabled")
            reply["result"] = self._rpc(frame["method"], frame.get("params") or {})
            if self.fault == "no_was_on":
                reply["result"] = {}
        except _RpcError as exc:
            reply["error"] = {"code": exc.code, "message": exc.message}
        return 200, json_type, json.dumps(reply).encode()


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
