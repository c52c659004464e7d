"""The TLS part of the broker check: handshake as the uplink does, and explain a refusal.

When verification fails, a second handshake that verifies nothing fetches the broker's certificate
anyway, so the technician hears *which* certificate was presented (names, issuer, dates), not just
that one was refused.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.diagnostics.report import Finding, fail, ok, warn

RENEW_WARN_DAYS = 30
_UNKNOWN_CA = {2, 18, 19, 20, 21, 27, 28}  # issuer not found, self-signed, untrusted, rejected
_EXPIRED, _NOT_YET = 10, 9
_NAME_MISMATCH = {62, 64}  # hostname, IP address


@dataclass(frozen=True, slots=True)
class CertInfo:
    subject: str
    issuer: str
    names: list[str]
    not_before: dt.datetime
    not_after: dt.datetime

    @staticmethod
    def parse(der_or_pem: bytes) -> CertInfo:
        if der_or_pem.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(der_or_pem)
        else:
            cert = x509.load_der_x509_certificate(der_or_pem)
        names: list[str] = []
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
            names += [str(n) for n in san.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            pass
        return CertInfo(
            subject=_cn(cert.subject),
            issuer=_cn(cert.issuer),
            names=names,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )

    def describe(self) -> str:
        names = ", ".join(self.names) or self.subject
        return f"certificate for {names}, issued by '{self.issuer}', valid until {self.not_after:%Y-%m-%d}"


def _cn(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else name.rfc4514_string()


def make_context(ca_file: str | None, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    """What paho's tls_set builds: the CA file (or the system's CAs), hostname checked."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def _presented(host: str, port: int, timeout_s: float) -> CertInfo | None:
    """The broker's certificate, fetched without verifying it (for explaining a refusal only)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    return CertInfo.parse(der) if der else None


def check_tls(
    host: str,
    port: int,
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    now: dt.datetime,
    clock_set: bool,
    timeout_s: float,
) -> list[Finding]:
    """One handshake as the uplink makes it; ✓ with the certificate's dates, or ✗ with the reason."""
    where = f"mqtt.ca_file {ca_file}" if ca_file else "the system's CA list (no mqtt.ca_file)"
    try:
        context = make_context(ca_file, cert_file, key_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        return [
            fail(
                "broker.tls",
                f"the TLS files cannot be used: {exc}",
                "mqtt.ca_file must be the PEM CA certificate from the broker's operator; mqtt.cert_file "
                "and mqtt.key_file this gateway's certificate and its matching private key",
            )
        ]
    findings: list[Finding] = []
    if cert_file:
        findings += _client_cert(cert_file, now)
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return [*findings, _refused(exc, host, port, where, now, clock_set, timeout_s)]
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        fix = "the broker may not speak TLS on this port (mqtts:// needs the TLS port, usually 8883)"
        if "alert" in str(reason).lower() or "certificate" in str(reason).lower():
            fix = (
                "the broker refused this gateway's client certificate: check mqtt.cert_file and "
                "mqtt.key_file with the broker's operator (signed by the CA the broker trusts, not expired)"
            )
        return [*findings, fail("broker.tls", f"TLS handshake with {host}:{port} failed: {reason}", fix)]
    except OSError as exc:
        return [
            *findings,
            fail(
                "broker.tls",
                f"the connection to {host}:{port} dropped during the TLS handshake: {exc}",
                "the broker may not speak TLS on this port, or it refused this gateway's certificate",
            ),
        ]
    info = CertInfo.parse(der) if der else None
    if info is None:
        return [*findings, ok("broker.tls", f"{version} with {host}:{port}")]
    days = (info.not_after - now).days
    line = f"{version}, {info.describe()} ({days} days left)"
    if days < RENEW_WARN_DAYS:
        findings.append(
            warn("broker.tls", line, "the broker's certificate expires soon: tell the broker's operator")
        )
    else:
        findings.append(ok("broker.tls", line))
    return findings


def _refused(
    exc: ssl.SSLCertVerificationError,
    host: str,
    port: int,
    where: str,
    now: dt.datetime,
    clock_set: bool,
    timeout_s: float,
) -> Finding:
    code = exc.verify_code
    info = _presented(host, port, timeout_s)
    shown = f" ({info.describe()})" if info else ""
    check = "broker.tls"
    if code == _EXPIRED:
        ended = f" on {info.not_after:%Y-%m-%d}" if info else ""
        fix = "the broker's certificate must be renewed: tell the broker's operator"
        if not clock_set:
            fix = "this gateway's clock is not set (see the clock check): set it first"
        return fail(check, f"the broker's certificate expired{ended}{shown}", fix)
    if code == _NOT_YET:
        return fail(
            check,
            f"the broker's certificate is not valid yet{shown}",
            "this gateway's clock is probably wrong (see the clock check), or the certificate was "
            "issued with a future date",
        )
    if code in _NAME_MISMATCH:
        names = ", ".join(info.names or [info.subject]) if info else "other names"
        return fail(
            check,
            f"the broker's certificate is for {names}, not for {host}{shown}",
            f"put one of the certificate's names ({names}) in mqtt.url, or have the broker's operator "
            f"issue a certificate for {host}",
        )
    if code in _UNKNOWN_CA:
        issuer = f"'{info.issuer}'" if info else "another authority"
        return fail(
            check,
            f"the broker's certificate is signed by {issuer}, which {where} does not trust{shown}",
            "get the CA certificate that signed the broker's certificate from the broker's operator "
            "and point mqtt.ca_file at it",
        )
    return fail(
        check,
        f"the broker's certificate was refused: {exc.verify_message}{shown}",
        "show this line to the broker's operator",
    )


def _client_cert(cert_file: str, now: dt.datetime) -> list[Finding]:
    try:
        with open(cert_file, "rb") as f:
            info = CertInfo.parse(f.read())
    except (OSError, ValueError) as exc:
        return [
            fail(
                "broker.client_cert", f"cannot read {cert_file}: {exc}", "point mqtt.cert_file at a PEM file"
            )
        ]
    days = (info.not_after - now).days
    line = f"this gateway's {info.describe()}"
    if info.not_after < now:
        return [fail("broker.client_cert", f"{line}: expired", "ask the broker's operator for a new one")]
    if days < RENEW_WARN_DAYS:
        return [warn("broker.client_cert", f"{line} ({days} days left)", "ask for a new one before then")]
    return [ok("broker.client_cert", f"{line} ({days} days left)")]
