"""The broker, step by step as the uplink meets it: name, connection, TLS, login, a round trip.

Each step runs only when the one before it passed, so the first ✗ is the thing to fix. The round
trip uses its own client id (never the gateway's: the broker would disconnect the running gateway)
and the topic `{prefix}/{site}/{gateway}/doctor`, inside the gateway's own topic tree that the
broker's access rules already allow; the message is not retained.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from gateway.config.loader import read_secret
from gateway.core.clock import clock_is_set
from gateway.diagnostics.context import Context
from gateway.diagnostics.report import Finding, fail, ok, warn
from gateway.diagnostics.tls import check_tls


def check_broker(ctx: Context) -> list[Finding]:
    assert ctx.loaded is not None
    mqtt = ctx.loaded.config.mqtt
    if mqtt is None:
        return [ok("broker", "no [mqtt] section: the gateway keeps everything in its outbox")]
    url = urlsplit(mqtt.url)
    host = url.hostname or ""
    port = url.port or (8883 if mqtt.tls else 1883)
    findings = [_dns(host, port, ctx.timeout_s)]
    if findings[-1].level.name == "FAIL":
        return findings
    findings.append(_tcp(host, port, ctx.timeout_s, mqtt.tls))
    if findings[-1].level.name == "FAIL":
        return findings
    resolve = ctx.loaded.resolve
    ca = str(resolve(mqtt.ca_file)) if mqtt.ca_file else None
    cert = str(resolve(mqtt.cert_file)) if mqtt.cert_file else None
    key = str(resolve(mqtt.key_file)) if mqtt.key_file else None
    if mqtt.tls:
        now_ms = ctx.time_ms()
        now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
        tls = check_tls(host, port, ca, cert, key, now, clock_is_set(now_ms), ctx.timeout_s)
        findings += tls
        if any(f.level.name == "FAIL" for f in tls):
            return findings
    password = None
    if mqtt.password_file:
        path = resolve(mqtt.password_file)
        try:
            password = read_secret(path)
        except OSError as exc:
            return [
                *findings,
                fail(
                    "broker.auth",
                    f"cannot read the password file {path}: {exc.strerror or exc}",
                    f"run doctor as the service user or with sudo; the file must be readable by the "
                    f"service: `sudo chown lintel {path} && sudo chmod 600 {path}`",
                ),
            ]
    elif mqtt.password_secret:
        from gateway.config.secrets import SecretError, SecretStore

        store = SecretStore(ctx.loaded.state_dir)
        try:
            password = store.load().get(mqtt.password_secret)
        except SecretError as exc:
            return [*findings, fail("broker.auth", str(exc), "run doctor as the service user or with sudo")]
        if password is None:
            return [
                *findings,
                fail(
                    "broker.auth",
                    f"no secret {mqtt.password_secret} in {store.path}",
                    "deploy it (docs/deployments.md), or set mqtt.password_file",
                ),
            ]
    gw = ctx.loaded.config.gateway
    topic = f"{mqtt.topic_prefix}/{gw.site}/{gw.id}/doctor"
    return findings + _session(ctx, host, port, mqtt, password, (ca, cert, key), topic)


def _dns(host: str, port: int, timeout_s: float) -> Finding:
    try:
        ipaddress.ip_address(host)
        return ok("broker.dns", f"{host} is an address (no name to look up)")
    except ValueError:
        pass
    answer: dict[str, Any] = {}

    def lookup() -> None:
        try:
            answer["addrs"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            answer["error"] = exc

    worker = threading.Thread(target=lookup, name="doctor-dns", daemon=True)
    worker.start()
    worker.join(timeout_s)
    fix = (
        f"check the broker's name in mqtt.url ({host}), the network (cable, Wi-Fi) and the DNS "
        "server (/etc/resolv.conf): `getent hosts " + host + "`"
    )
    if "addrs" in answer:
        addrs = sorted({a[4][0] for a in answer["addrs"]})
        return ok("broker.dns", f"{host} is {', '.join(addrs[:3])}")
    if "error" in answer:
        return fail("broker.dns", f"{host} cannot be resolved: {answer['error']}", fix)
    return fail("broker.dns", f"no DNS answer for {host} within {timeout_s:g} s", fix)


def _tcp(host: str, port: int, timeout_s: float, tls: bool) -> Finding:
    usual = "8883 for mqtts://" if tls else "1883 for mqtt://"
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except ConnectionRefusedError:
        return fail(
            "broker.tcp",
            f"{host}:{port} refuses connections",
            f"the broker is down or listens on another port (usually {usual}): ask the broker's operator",
        )
    except TimeoutError:
        return fail(
            "broker.tcp",
            f"no answer from {host}:{port} within {timeout_s:g} s",
            "a firewall drops the connection, or the address is wrong: check the building's router "
            f"lets the gateway out to port {port}",
        )
    except OSError as exc:
        return fail(
            "broker.tcp",
            f"cannot reach {host}:{port}: {exc.strerror or exc}",
            "check the gateway's network (cable, Wi-Fi, default route: `ip route`)",
        )
    return ok(
        "broker.tcp", f"{host}:{port} accepts connections ({(time.monotonic() - started) * 1000:.0f} ms)"
    )


def _session(
    ctx: Context,
    host: str,
    port: int,
    mqtt: Any,
    password: str | None,
    tls: tuple[str | None, str | None, str | None],
    topic: str,
) -> list[Finding]:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    v5 = mqtt.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"lintel-doctor-{secrets.token_hex(4)}",
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        reconnect_on_failure=False,
    )
    if mqtt.username:
        client.username_pw_set(mqtt.username, password)
    if mqtt.tls:
        client.tls_set(ca_certs=tls[0], certfile=tls[1], keyfile=tls[2])
    nonce = secrets.token_hex(8).encode()
    events = {name: threading.Event() for name in ("connack", "suback", "message", "gone")}
    seen: dict[str, Any] = {}

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        seen["connack"] = reason
        events["connack"].set()

    def on_subscribe(_c: Any, _u: Any, _mid: Any, reasons: Any, _p: Any = None) -> None:
        seen["suback"] = reasons
        events["suback"].set()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if msg.topic == topic and msg.payload == nonce:
            events["message"].set()

    def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        seen["gone"] = reason
        events["gone"].set()
        events["connack"].set()

    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_message, client.on_disconnect = on_message, on_disconnect
    who = f"user '{mqtt.username}'" if mqtt.username else "no user name (anonymous)"
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        return [fail("broker.auth", f"MQTT connection to {host}:{port} failed: {exc}", "see the steps above")]
    client.loop_start()
    try:
        if not events["connack"].wait(ctx.timeout_s) or "connack" not in seen:
            return [
                fail(
                    "broker.auth",
                    f"{host}:{port} accepted the connection but never answered the MQTT login "
                    f"({seen.get('gone', 'no CONNACK')})",
                    "the port may not be an MQTT broker, or the broker dropped this client: ask its operator",
                )
            ]
        reason = seen["connack"]
        if reason.is_failure:
            return [
                fail(
                    "broker.auth",
                    f"the broker refused the login with {who}: {reason}",
                    "the password in mqtt.password_file or mqtt.username is wrong, or this user is not "
                    "allowed on the broker: check both with the broker's operator",
                )
            ]
        findings = [ok("broker.auth", f"logged in with {who} (MQTT {mqtt.protocol})")]
        findings.append(_round_trip(ctx, client, topic, nonce, events, seen))
        return findings
    finally:
        client.disconnect()
        client.loop_stop()


def _round_trip(
    ctx: Context,
    client: Any,
    topic: str,
    nonce: bytes,
    events: dict[str, threading.Event],
    seen: dict[str, Any],
) -> Finding:
    check = "broker.round_trip"
    client.subscribe(topic, qos=1)
    subscribed = events["suback"].wait(ctx.timeout_s) and not any(
        getattr(r, "is_failure", False) for r in seen.get("suback", [])
    )
    started = time.monotonic()
    info = client.publish(topic, nonce, qos=1)
    try:
        info.wait_for_publish(ctx.timeout_s)
    except (ValueError, RuntimeError) as exc:
        return fail(check, f"publishing on {topic} failed: {exc}", "show this line to the broker's operator")
    if not info.is_published():
        return fail(
            check,
            f"the broker did not acknowledge a message on {topic} within {ctx.timeout_s:g} s",
            "the broker's access rules may not allow this gateway's topics: ask its operator to allow "
            f"publishing to {topic.rsplit('/', 1)[0]}/#",
        )
    if not subscribed:
        return warn(
            check,
            f"published on {topic} (acknowledged), but subscribing to it was refused",
            "the gateway needs to subscribe to its command topic: ask the broker's operator to allow "
            f"subscribing to {topic.rsplit('/', 1)[0]}/#",
        )
    if not events["message"].wait(ctx.timeout_s):
        return fail(
            check,
            f"a message published on {topic} did not come back within {ctx.timeout_s:g} s",
            "the broker's access rules may drop this gateway's messages: ask its operator",
        )
    return ok(check, f"a message on {topic} came back in {(time.monotonic() - started) * 1000:.0f} ms")
