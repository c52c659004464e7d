"""The fleet's web page: server-rendered HTML from PostgreSQL, no front-end build, no JavaScript.

Pages: `/` every building at a glance, `/gateway/<id>` one building (the picture `lintel status`
gives on site: devices, open alarms, recent events, loss), `/alarms` open alarms across buildings
with an Acknowledge button. Everything but `/healthz` and `/login` needs the bearer token: in an
`Authorization: Bearer` header (scripts, monitoring) or, for a browser, the session cookie the
login form sets (HttpOnly, SameSite=Strict; forms also carry a CSRF token). Serve it on loopback
and put TLS in front with a reverse proxy (README, "Fleet service").
Acknowledging signs `alarm_ack` with the service's key, which the gateways allow `alarm_ack` and
nothing else; everything else is signed on the operator's machine with `lintel-fleet`.
Every value that came from a gateway is escaped: gateways are not trusted to write HTML.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import psycopg

from fleet import db, queries
from fleet.building_page import render_gateway
from fleet.operator import CommandError, OperatorKey, Publisher, send
from fleet.pages import LOGIN_FORM, e, page, render_alarms, render_overview

log = logging.getLogger("lintel.fleet.web")
MAX_FORM_BYTES = 4096
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ALARM_ID_RE = re.compile(r"^[0-9]{1,12}$")


class FleetWeb:
    """State shared by the request threads: the token, one DB connection per thread, the signer."""

    def __init__(
        self, dsn: str, token: str, publisher: Publisher | None, ack_key: OperatorKey | None
    ) -> None:
        self.dsn = dsn
        self.token = token
        self.secret = hashlib.sha256(b"lintel-fleet-session\0" + token.encode()).digest()
        self.publisher = publisher
        self.ack_key = ack_key
        self._local = threading.local()

    def conn(self) -> psycopg.Connection[Any]:
        c = getattr(self._local, "conn", None)
        if c is None or c.closed:
            c = self._local.conn = db.connect(self.dsn, autocommit=True)
        return c

    def drop_conn(self) -> None:
        c = getattr(self._local, "conn", None)
        self._local.conn = None
        if c is not None:
            c.close()

    def session_value(self) -> str:
        return hmac.new(self.secret, b"session", "sha256").hexdigest()

    def csrf(self) -> str:
        return hmac.new(self.secret, b"csrf", "sha256").hexdigest()

    def authorised(self, headers: Any) -> bool:
        auth = headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), self.token.encode()):
            return True
        for part in headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "lintel_fleet" and hmac.compare_digest(value.encode(), self.session_value().encode()):
                return True
        return False


class Handler(BaseHTTPRequestHandler):
    server: FleetServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str = "text/html; charset=utf-8",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header(
            "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
        )
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, to: str, extra: dict[str, str] | None = None) -> None:
        self._send(HTTPStatus.SEE_OTHER, b"", extra={"Location": to, **(extra or {})})

    def _form(self) -> dict[str, str] | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        if length < 0 or length > MAX_FORM_BYTES:
            return None
        fields = parse_qs(self.rfile.read(length).decode("utf-8", "replace"), max_num_fields=10)
        return {k: v[0] for k, v in fields.items()}

    def do_GET(self) -> None:
        web = self.server.web
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
            return
        if url.path == "/login":
            self._send(200, page("Sign in", LOGIN_FORM))
            return
        if not web.authorised(self.headers):
            self._redirect("/login")
            return
        try:
            if url.path == "/":
                body = page("Buildings", render_overview(queries.gateways(web.conn())))
            elif url.path == "/alarms":
                flash = parse_qs(url.query).get("sent", [""])[0]
                body = page(
                    "Alarms",
                    render_alarms(queries.alarms(web.conn()), web.csrf(), flash, web.ack_key is not None),
                )
            elif url.path.startswith("/gateway/") and ID_RE.match(url.path[9:]):
                body_or_none = render_gateway(web.conn(), url.path[9:], web.csrf(), web.ack_key is not None)
                if body_or_none is None:
                    self._send(404, page("Not found", "<p>No such gateway.</p>"))
                    return
                body = body_or_none
            else:
                self._send(404, page("Not found", "<p>No such page.</p>"))
                return
        except psycopg.Error as exc:
            log.warning("page %s failed: %s", url.path, exc)
            web.drop_conn()  # a fresh connection for the next request
            self._send(503, page("Database unavailable", "<p>PostgreSQL did not answer; try again.</p>"))
            return
        self._send(200, body)

    def do_POST(self) -> None:
        web = self.server.web
        url = urlsplit(self.path)
        form = self._form()
        if form is None:
            self._send(413, page("Refused", "<p>Form too large.</p>"))
            return
        if url.path == "/login":
            if hmac.compare_digest(form.get("token", "").encode(), web.token.encode()):
                cookie = f"lintel_fleet={web.session_value()}; HttpOnly; SameSite=Strict; Path=/"
                self._redirect("/", {"Set-Cookie": cookie})
            else:
                self._send(403, page("Sign in", "<p class='off'>Wrong token.</p>" + LOGIN_FORM))
            return
        if not web.authorised(self.headers):
            self._send(403, page("Refused", "<p>Not signed in.</p>"))
            return
        if url.path != "/alarms/ack":
            self._send(404, page("Not found", "<p>No such action.</p>"))
            return
        if not hmac.compare_digest(form.get("csrf", "").encode(), web.csrf().encode()):
            self._send(403, page("Refused", "<p>Stale form: reload the page.</p>"))
            return
        gateway_id, alarm_id = form.get("gateway_id", ""), form.get("alarm_id", "")
        if not ID_RE.match(gateway_id) or not ALARM_ID_RE.match(alarm_id):
            self._send(400, page("Refused", "<p>Not a gateway and alarm id.</p>"))
            return
        if web.ack_key is None or web.publisher is None:
            self._send(409, page("Refused", "<p>This service has no acknowledge key (--ack-key).</p>"))
            return
        try:
            command_id = send(
                web.conn(), web.publisher, web.ack_key, gateway_id, "alarm_ack", {"alarm_id": alarm_id}
            )
        except (CommandError, psycopg.Error) as exc:
            self._send(503, page("Not sent", f"<p>The acknowledgement was not sent: {e(exc)}</p>"))
            return
        back = form.get("back", "/alarms")
        back = back if back in ("/alarms", f"/gateway/{gateway_id}") else "/alarms"
        self._redirect(f"{back}?sent={quote(command_id)}")


class FleetServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], web: FleetWeb) -> None:
        self.web = web
        super().__init__(address, Handler)
