"""The client's side of TLS: which credentials a channel to the service uses.

TLS is on when asked for (`tls=True`, TRADING_TLS=yes) or when any of its files
or a server name is given. Without a CA file the server's certificate is checked against gRPC's
default roots (a public CA); with one, against that CA only. A client
certificate and key (mutual TLS) go together. `server_name` is the name checked
in the server's certificate instead of the target's host: for a certificate
issued to `trading.internal` reached through an address or a tunnel.

Each argument left out is read from the environment:

    TRADING_TLS=yes          TLS with no file given (the default roots)
    TRADING_TLS_CA           PEM CA certificate(s) to trust
    TRADING_TLS_CLIENT_CERT  PEM client certificate (mutual TLS)
    TRADING_TLS_CLIENT_KEY   its private key
    TRADING_TLS_SERVER_NAME  the name to check in the server's certificate

An argument given wins over the environment: `tls=False` is plaintext whatever
the environment says. The files are read when the settings are resolved, so a
missing one is reported at once, naming it, not at the first call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias

import grpc
import grpc.aio

PathArg: TypeAlias = str | os.PathLike[str]
ChannelOptions: TypeAlias = Sequence[tuple[str, str | int]]

ENV_TLS: Final = "TRADING_TLS"
ENV_CA: Final = "TRADING_TLS_CA"
ENV_CLIENT_CERT: Final = "TRADING_TLS_CLIENT_CERT"
ENV_CLIENT_KEY: Final = "TRADING_TLS_CLIENT_KEY"
ENV_SERVER_NAME: Final = "TRADING_TLS_SERVER_NAME"

_YES: Final = frozenset({"1", "yes", "true", "on"})
_NO: Final = frozenset({"", "0", "no", "false", "off"})


@dataclass(frozen=True)
class ClientTLS:
    """Resolved TLS settings of a channel, the files' contents read."""

    root_certificates: bytes | None = None  # None: gRPC's default roots
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )

    def options(self) -> list[tuple[str, str]]:
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]


def resolve_tls(
    tls: bool | None = None,
    ca_file: PathArg | None = None,
    cert_file: PathArg | None = None,
    key_file: PathArg | None = None,
    server_name: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> ClientTLS | None:
    """The TLS settings from the arguments, and the environment for those not
    given; None means plaintext. Raises ValueError naming the file or variable
    that is wrong (unreadable, not PEM, a certificate without its key)."""
    env = os.environ if environ is None else environ
    if tls is False:
        options = {"ca_file": ca_file, "cert_file": cert_file, "key_file": key_file}
        given = [n for n, v in options.items() if v is not None]
        if server_name is not None:
            given.append("server_name")
        if given:
            raise ValueError(f"tls=False, but TLS options are given: {', '.join(given)}")
        return None
    ca = ca_file if ca_file is not None else _env(env, ENV_CA)
    cert = cert_file if cert_file is not None else _env(env, ENV_CLIENT_CERT)
    key = key_file if key_file is not None else _env(env, ENV_CLIENT_KEY)
    name = server_name if server_name is not None else _env(env, ENV_SERVER_NAME)
    wanted = tls if tls is not None else _env_flag(env, ENV_TLS)
    if not (wanted or ca or cert or key or name):
        return None
    if (cert is None) != (key is None):
        raise ValueError(
            "a client certificate needs its private key, and a key its certificate: "
            f"give both (cert_file/{ENV_CLIENT_CERT}, key_file/{ENV_CLIENT_KEY}) or neither"
        )
    return ClientTLS(
        root_certificates=_read_pem("CA file", ca),
        certificate_chain=_read_pem("client certificate", cert),
        private_key=_read_pem("client key", key),
        server_name=name,
    )


def open_channel(target: str, tls: ClientTLS | None, options: ChannelOptions = ()) -> grpc.Channel:
    """A blocking channel to `target`: secure when `tls` is given, plaintext otherwise."""
    if tls is None:
        return grpc.insecure_channel(target, options=list(options))
    return grpc.secure_channel(target, tls.credentials(), options=[*options, *tls.options()])


def open_aio_channel(
    target: str, tls: ClientTLS | None, options: ChannelOptions = ()
) -> grpc.aio.Channel:
    """The grpc.aio twin of open_channel; call it inside the event loop."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=list(options))
    return grpc.aio.secure_channel(target, tls.credentials(), options=[*options, *tls.options()])


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None  # set but empty: unset, as a blanked line in an env file means


def _env_flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ValueError(f"{name}={env[name]!r}: expected yes or no")


def _read_pem(what: str, path: PathArg | None) -> bytes | None:
    if path is None:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(
            f"TLS {what} {os.fspath(path)} cannot be read: {exc.strerror or exc}"
        ) from None
    # gRPC would take anything here and fail each handshake with an obscure error.
    if b"-----BEGIN " not in data:
        raise ValueError(f"TLS {what} {os.fspath(path)} is not PEM (no '-----BEGIN' line)")
    return data
