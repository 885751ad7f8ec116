"""The server's transport security: TLS, mutual TLS, and when plaintext is allowed.

Every call carries its bearer token in its metadata, so whoever can read the
traffic can act as the caller. The rule: plaintext only on a loopback address
(127.0.0.0/8, ::1, localhost) or a unix socket, where nothing crosses a
network; anywhere else TLS (TRADING_TLS_CERT, TRADING_TLS_KEY), unless the
operator says something else encrypts the traffic (TRADING_ALLOW_PLAINTEXT=yes).

The files are read and checked once, with `cryptography`, before anything else
starts: gRPC itself only looks at them at the first handshake, and reports a
bad one to the client ("handshake failed") and not to the operator.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeAlias

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from server.settings import Settings

log = logging.getLogger(__name__)

Mode: TypeAlias = Literal["plaintext", "tls", "mtls"]

# What the start-up log line says the server speaks.
MODE_NAMES: dict[Mode, str] = {
    "plaintext": "plaintext",
    "tls": "TLS",
    "mtls": "mutual TLS, client certificates required",
}


class TransportConfigError(ValueError):
    """TLS files that cannot be used, or plaintext where it is not allowed: bad
    configuration, which trading-server reports with exit status 2."""


@dataclass(frozen=True)
class ServerTransport:
    """How the server listens: `credentials` None means plaintext."""

    mode: Mode
    credentials: grpc.ServerCredentials | None = None

    def bind(self, server: grpc.Server, address: str) -> int:
        """Add the listening port; returns it (0: gRPC could not bind)."""
        if self.credentials is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, self.credentials)


def transport_mode(settings: Settings) -> Mode:
    if settings.trading_tls_cert is None:
        return "plaintext"
    return "mtls" if settings.trading_tls_client_ca is not None else "tls"


def server_transport(settings: Settings, address: str) -> ServerTransport:
    """The transport for `address` as the settings configure it; raises
    TransportConfigError for unusable files or plaintext where it is refused."""
    mode = transport_mode(settings)
    if mode == "plaintext":
        check_plaintext_allowed(address, allow_plaintext=settings.trading_allow_plaintext)
        return ServerTransport(mode)
    # Settings guarantee the key comes with the certificate.
    assert settings.trading_tls_cert is not None and settings.trading_tls_key is not None
    credentials = server_credentials(
        settings.trading_tls_cert, settings.trading_tls_key, settings.trading_tls_client_ca
    )
    return ServerTransport(mode, credentials)


def check_plaintext_allowed(address: str, *, allow_plaintext: bool) -> None:
    """Refuse plaintext on any address but loopback, unless it is explicitly allowed."""
    if is_local_address(address):
        return
    if allow_plaintext:
        log.warning(
            "serving PLAINTEXT on %s, which is not a loopback address "
            "(TRADING_ALLOW_PLAINTEXT=yes): bearer tokens cross the network as sent; "
            "something else must encrypt the traffic",
            address,
        )
        return
    raise TransportConfigError(
        f"refusing to serve plaintext on {address}, which is not a loopback address: "
        "bearer tokens would cross the network readable by anyone on the path. "
        "Set TRADING_TLS_CERT and TRADING_TLS_KEY to serve TLS, or TRADING_ALLOW_PLAINTEXT=yes "
        "if something else encrypts the traffic (a service mesh, a TLS-terminating proxy)"
    )


def is_local_address(address: str) -> bool:
    """Whether a gRPC listen address (HOST:PORT, [IPv6]:PORT, unix:PATH) is reachable
    from this machine only: a loopback host, or a unix socket."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    return is_loopback_host(listen_host(address))


def listen_host(address: str) -> str:
    """The host part of HOST:PORT or [IPv6]:PORT ("" for ":PORT", which gRPC takes
    as every interface)."""
    if address.startswith("["):
        end = address.find("]")
        return address[1:end] if end > 0 else address
    host, colon, _port = address.rpartition(":")
    return host if colon else address


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 and the name localhost are loopback. Everything else is not:
    the wildcards 0.0.0.0 and ::, an empty host (every interface), and any other
    name, which could resolve anywhere."""
    name = host.strip().lower().removesuffix(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name
        return False


# ---------------------------------------------------------------------------
# Credentials from files, checked at start-up
# ---------------------------------------------------------------------------

_CERT, _KEY, _CLIENT_CA = "TRADING_TLS_CERT", "TRADING_TLS_KEY", "TRADING_TLS_CLIENT_CA"


def server_credentials(
    cert_file: Path, key_file: Path, client_ca_file: Path | None = None
) -> grpc.ServerCredentials:
    """TLS server credentials from PEM files; with `client_ca_file`, every client
    must present a certificate one of those CAs signed. Raises
    TransportConfigError naming the setting and the file when a file cannot be
    read, is not PEM, or the key is not the certificate's."""
    cert_pem = _read(_CERT, cert_file)
    key_pem = _read(_KEY, key_file)
    chain = _certificates(_CERT, cert_file, cert_pem)
    leaf = chain[0]  # the server's own; any others are intermediates
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: the key is encrypted
        raise TransportConfigError(
            f"{_KEY} {key_file} is not an unencrypted PEM private key ({exc})"
        ) from None
    if _public_der(key.public_key()) != _public_der(leaf.public_key()):
        raise TransportConfigError(
            f"{_KEY} {key_file} is not the private key of the certificate in {_CERT} {cert_file}"
        )
    _warn_if_not_valid_now(leaf, cert_file)
    _warn_if_others_may_read(key_file)
    ca_pem: bytes | None = None
    if client_ca_file is not None:
        ca_pem = _read(_CLIENT_CA, client_ca_file)
        _certificates(_CLIENT_CA, client_ca_file, ca_pem)
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)],
        root_certificates=ca_pem,
        require_client_auth=ca_pem is not None,
    )


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TransportConfigError(
            f"{setting} {path} cannot be read: {exc.strerror or exc}"
        ) from None


def _certificates(setting: str, path: Path, pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise TransportConfigError(
            f"{setting} {path} is not a PEM certificate "
            "(expected '-----BEGIN CERTIFICATE-----' blocks)"
        ) from None


def _public_der(key: PublicKeyTypes) -> bytes:
    # The encoded public keys compare the same way for every key type (RSA, EC, Ed25519).
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _warn_if_others_may_read(key_file: Path) -> None:
    # A warning, not a refusal: a key its group may read (0640, group ssl-cert) is
    # how Debian shares keys with services, so only other users and writers count.
    if os.name != "posix":
        return
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o026:  # others may read, or group or others may write
        who = "anyone on this machine can read it" if mode & 0o004 else "others can change it"
        log.warning(
            "%s %s is mode %o: %s, and with it pose as this server; "
            "make it owner-only (chmod 600 %s)",
            _KEY,
            key_file,
            mode,
            who,
            key_file,
        )


def _warn_if_not_valid_now(leaf: x509.Certificate, path: Path) -> None:
    # Not refused: an operator replacing an expired certificate should get the
    # service back up at once; but every client will refuse it, so say so loudly.
    now = datetime.now(UTC)
    if now > leaf.not_valid_after_utc:
        log.warning(
            "TRADING_TLS_CERT %s EXPIRED on %s: every client will refuse the connection",
            path,
            leaf.not_valid_after_utc.isoformat(),
        )
    elif now < leaf.not_valid_before_utc:
        log.warning(
            "TRADING_TLS_CERT %s is NOT VALID YET (from %s): clients will refuse the connection",
            path,
            leaf.not_valid_before_utc.isoformat(),
        )
