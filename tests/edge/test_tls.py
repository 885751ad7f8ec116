"""TLS and mutual TLS through real channels, and the rule that keeps plaintext on loopback.

Every certificate is made at run time (tests/support/certs.py): a CA and what
it signs (a server certificate for the loopback names, a client certificate,
one that expired, one for another name), and a second CA whose certificates
nobody here trusts. The service is the real one (`create_server`), reached
through the SDK, tradectl and grpcurl as a user would; failures are checked as
the user sees them: the status, and the message naming what to fix.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from client.cli import main as tradectl
from server.bootstrap import create_server
from server.main import main as trading_server
from server.settings import Settings
from server.tls import (
    TransportConfigError,
    is_local_address,
    is_loopback_host,
    server_credentials,
)
from tests.conftest import TOKEN, RunningService, StartService
from tests.support.certs import CertFiles, CertificateAuthority
from tests.support.tools import REPO, venv_tool
from trading_sdk.client import AsyncTradingClient, TradingClient
from trading_sdk.tls import resolve_tls

CALL_TIMEOUT = 10.0
EXIT_USAGE = 2


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA the tests trust
    server: CertFiles  # for 127.0.0.1, ::1, localhost, signed by `ca`
    client: CertFiles  # client authentication, signed by `ca`
    expired: CertFiles  # a server certificate of `ca` that expired yesterday
    named: CertFiles  # a server certificate of `ca` for trading.internal only
    other_ca: Path  # a CA nobody here trusts
    foreign_server: CertFiles  # for the loopback names, signed by `other_ca`
    foreign_client: CertFiles  # client authentication, signed by `other_ca`


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = CertificateAuthority("trading test CA"), CertificateAuthority("another CA")
    return Pki(
        ca=ca.write(directory / "ca.pem"),
        server=ca.issue("trading server").write(directory, "server"),
        client=ca.issue("alice", client=True).write(directory, "client"),
        expired=ca.issue_expired("expired server").write(directory, "expired"),
        named=ca.issue("named", names=("trading.internal",)).write(directory, "named"),
        other_ca=other.write(directory / "other-ca.pem"),
        foreign_server=other.issue("impostor").write(directory, "foreign-server"),
        foreign_client=other.issue("mallory", client=True).write(directory, "foreign-client"),
    )


def tls_settings(server: CertFiles, client_ca: Path | None = None) -> dict[str, Any]:
    return {
        "trading_tls_cert": server.cert,
        "trading_tls_key": server.key,
        "trading_tls_client_ca": client_ca,
    }


@pytest.fixture
def tls_svc(start_service: StartService, pki: Pki) -> RunningService:
    """The service over TLS with the CA's server certificate."""
    return start_service(**tls_settings(pki.server))


@pytest.fixture
def mtls_svc(start_service: StartService, pki: Pki) -> RunningService:
    """The service over TLS, requiring a client certificate the CA signed."""
    return start_service(**tls_settings(pki.server, client_ca=pki.ca))


def refusal(target: str, **tls: Any) -> grpc.RpcError | None:
    """How one GetStatus call over a channel the SDK builds with `tls` failed; None
    when it was answered."""
    with TradingClient(target, TOKEN, timeout=CALL_TIMEOUT, **tls) as client:
        try:
            client.get_status()
        except grpc.RpcError as error:
            return error
    return None


def status_code(target: str, **tls: Any) -> grpc.StatusCode:
    error = refusal(target, **tls)
    return grpc.StatusCode.OK if error is None else error.code()


def verify_failed(error: grpc.RpcError | None) -> str:
    """The client's reason for refusing the server's certificate (the call is UNAVAILABLE)."""
    assert error is not None, "the call was answered"
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    details = error.details() or ""
    assert "CERTIFICATE_VERIFY_FAILED" in details, details
    return details


# ---------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------


def test_a_client_trusting_the_ca_gets_answers_over_tls(tls_svc: RunningService, pki: Pki) -> None:
    with TradingClient(tls_svc.target, TOKEN, ca_file=pki.ca, timeout=CALL_TIMEOUT) as client:
        status = client.get_status()
        assert status.trading.state  # a real answer, through authentication
        assert client.verify_audit().ok


def test_the_async_client_speaks_tls_too(tls_svc: RunningService, pki: Pki) -> None:
    async def call() -> str:
        async with AsyncTradingClient(tls_svc.target, TOKEN, ca_file=pki.ca) as client:
            return (await client.get_status()).version

    assert asyncio.run(call())


def test_a_plaintext_client_gets_nothing_from_a_tls_server(tls_svc: RunningService) -> None:
    # The fixture's own client is plaintext: what a client left unconfigured does.
    with pytest.raises(grpc.RpcError) as refused:
        tls_svc.client.get_status()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_tls_client_gets_nothing_from_a_plaintext_server(
    start_service: StartService, pki: Pki
) -> None:
    svc = start_service()
    assert status_code(svc.target, ca_file=pki.ca) == grpc.StatusCode.UNAVAILABLE
    assert status_code(svc.target) == grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("server", "trusted"),
    [
        pytest.param("server", "other_ca", id="client-trusts-another-ca"),
        pytest.param("foreign_server", "ca", id="server-cert-from-another-ca"),
        pytest.param("server", None, id="default-roots-do-not-know-a-private-ca"),
    ],
)
def test_a_server_certificate_the_client_does_not_trust_is_refused(
    start_service: StartService, pki: Pki, server: str, trusted: str | None
) -> None:
    svc = start_service(**tls_settings(getattr(pki, server)))
    tls: dict[str, Any] = {"ca_file": getattr(pki, trusted)} if trusted else {"tls": True}
    verify_failed(refusal(svc.target, **tls))


def test_an_expired_server_certificate_is_refused_and_the_server_says_so(
    start_service: StartService, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="server.tls"):
        svc = start_service(**tls_settings(pki.expired))

    assert "expired" in verify_failed(refusal(svc.target, ca_file=pki.ca))
    warnings = [r.getMessage() for r in caplog.records if r.name == "server.tls"]
    assert any("EXPIRED" in w and str(pki.expired.cert) in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("mode", "warned"),
    [
        (0o600, None),
        (0o400, None),
        (0o640, None),  # shared with a group (Debian's ssl-cert): how keys are given to services
        (0o644, "anyone on this machine can read it"),
        (0o604, "anyone on this machine can read it"),
        (0o660, "others can change it"),
        (0o602, "others can change it"),
    ],
)
def test_a_private_key_others_may_read_or_change_is_warned_of_by_name(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int, warned: str | None
) -> None:
    key = tmp_path / "server.key"
    key.write_bytes(pki.server.key.read_bytes())
    key.chmod(mode)

    with caplog.at_level(logging.WARNING, logger="server.tls"):
        server_credentials(pki.server.cert, key)

    warnings = [r.getMessage() for r in caplog.records if r.name == "server.tls"]
    if warned is None:
        assert warnings == []
    else:
        (warning,) = warnings
        assert str(key) in warning and warned in warning and f"mode {mode:o}" in warning


def test_the_server_name_checked_can_differ_from_the_target(
    start_service: StartService, pki: Pki
) -> None:
    svc = start_service(**tls_settings(pki.named))  # issued to trading.internal only

    refused = refusal(svc.target, ca_file=pki.ca)  # 127.0.0.1 is not in it
    assert refused is not None and refused.code() == grpc.StatusCode.UNAVAILABLE
    assert "Hostname Verification Check failed" in (refused.details() or "")
    assert status_code(svc.target, ca_file=pki.ca, server_name="trading.internal") == (
        grpc.StatusCode.OK
    )


def test_tls_also_serves_on_every_interface(calendar: Any, tmp_path: Path, pki: Pki) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'audit.db'}", **tls_settings(pki.server)
    )
    service = create_server(settings, "0.0.0.0:0", token=TOKEN, calendar=calendar)
    service.server.start()
    try:
        assert status_code(f"127.0.0.1:{service.port}", ca_file=pki.ca) == grpc.StatusCode.OK
    finally:
        service.stop(0)


# ---------------------------------------------------------------------------
# Mutual TLS
# ---------------------------------------------------------------------------


def test_mtls_refuses_a_client_without_a_certificate(mtls_svc: RunningService, pki: Pki) -> None:
    assert status_code(mtls_svc.target, ca_file=pki.ca) == grpc.StatusCode.UNAVAILABLE


def test_mtls_refuses_a_client_certificate_from_another_ca(
    mtls_svc: RunningService, pki: Pki
) -> None:
    foreign = pki.foreign_client
    code = status_code(
        mtls_svc.target, ca_file=pki.ca, cert_file=foreign.cert, key_file=foreign.key
    )
    assert code == grpc.StatusCode.UNAVAILABLE


def test_mtls_admits_a_client_certificate_the_ca_signed(mtls_svc: RunningService, pki: Pki) -> None:
    client = pki.client
    code = status_code(mtls_svc.target, ca_file=pki.ca, cert_file=client.cert, key_file=client.key)
    assert code == grpc.StatusCode.OK


def test_mtls_still_needs_the_token(mtls_svc: RunningService, pki: Pki) -> None:
    # A certificate says which machine may connect; the token, who is calling.
    with (
        TradingClient(
            mtls_svc.target,
            "not-the-token",
            ca_file=pki.ca,
            cert_file=pki.client.cert,
            key_file=pki.client.key,
        ) as client,
        pytest.raises(grpc.RpcError) as refused,
    ):
        client.get_status()
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


# ---------------------------------------------------------------------------
# The SDK's defaults from the environment
# ---------------------------------------------------------------------------


def test_the_sdk_takes_its_tls_settings_from_the_environment(
    mtls_svc: RunningService, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADING_TLS_CA", str(pki.ca))
    assert status_code(mtls_svc.target) == grpc.StatusCode.UNAVAILABLE  # no client cert yet

    monkeypatch.setenv("TRADING_TLS_CLIENT_CERT", str(pki.client.cert))
    monkeypatch.setenv("TRADING_TLS_CLIENT_KEY", str(pki.client.key))
    assert status_code(mtls_svc.target) == grpc.StatusCode.OK


def test_trading_tls_yes_turns_tls_on_and_the_server_name_comes_from_the_environment(
    start_service: StartService, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = start_service(**tls_settings(pki.named))
    monkeypatch.setenv("TRADING_TLS", "yes")
    assert status_code(svc.target) == grpc.StatusCode.UNAVAILABLE  # default roots: unknown CA

    monkeypatch.setenv("TRADING_TLS_CA", str(pki.ca))
    monkeypatch.setenv("TRADING_TLS_SERVER_NAME", "trading.internal")
    assert status_code(svc.target) == grpc.StatusCode.OK


def test_an_argument_wins_over_the_environment(
    start_service: StartService, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = start_service()  # plaintext, on loopback
    monkeypatch.setenv("TRADING_TLS_CA", str(pki.ca))
    assert status_code(svc.target) == grpc.StatusCode.UNAVAILABLE
    assert status_code(svc.target, tls=False) == grpc.StatusCode.OK


def test_tls_options_are_refused_beside_a_channel_of_ones_own(pki: Pki) -> None:
    with grpc.insecure_channel("127.0.0.1:1") as channel, pytest.raises(ValueError) as refused:
        TradingClient("127.0.0.1:1", TOKEN, channel=channel, ca_file=pki.ca)
    assert "channel" in str(refused.value)


@pytest.mark.parametrize(
    ("arguments", "environment", "expected"),
    [
        ({"cert_file": "client.pem"}, {}, "needs its private key"),
        ({}, {"TRADING_TLS_CLIENT_KEY": "client.key"}, "needs its private key"),
        ({"ca_file": "missing.pem"}, {}, "TLS CA file missing.pem cannot be read"),
        ({}, {"TRADING_TLS_CA": "missing.pem"}, "TLS CA file missing.pem cannot be read"),
        ({"tls": False, "ca_file": "ca.pem"}, {}, "tls=False, but TLS options are given: ca_file"),
        ({}, {"TRADING_TLS": "maybe"}, "TRADING_TLS='maybe': expected yes or no"),
    ],
)
def test_bad_client_tls_settings_say_what_is_wrong(
    arguments: dict[str, Any],
    environment: dict[str, str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as refused:
        resolve_tls(**arguments)
    assert expected in str(refused.value)


def test_a_client_file_that_is_not_pem_is_refused_naming_it(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_bytes(b"\x30\x82\x01\x0a not PEM")
    with pytest.raises(ValueError) as refused:
        resolve_tls(ca_file=junk)
    assert f"TLS CA file {junk} is not PEM" in str(refused.value)


def test_nothing_given_is_plaintext() -> None:
    assert resolve_tls(environ={}) is None
    assert resolve_tls(environ={"TRADING_TLS": "no", "TRADING_TLS_CA": ""}) is None


# ---------------------------------------------------------------------------
# tradectl and grpcurl
# ---------------------------------------------------------------------------


def test_tradectl_status_over_tls(
    tls_svc: RunningService, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    status = tradectl(
        ["--target", tls_svc.target, "--token", TOKEN, "--tls-ca", str(pki.ca), "status"]
    )

    out = capsys.readouterr().out
    assert status == 0
    assert "ACTIVE" in out


def test_tradectl_in_plaintext_against_tls_says_to_use_tls_not_to_start_it(
    tls_svc: RunningService, capsys: pytest.CaptureFixture[str]
) -> None:
    status = tradectl(["--target", tls_svc.target, "--token", TOKEN, "status"])
    err = capsys.readouterr().err
    assert status == 4
    assert "closed the connection at once" in err and "--tls-ca" in err
    assert "make run" not in err  # the service is running: starting it is not the fix


def test_tradectl_over_mtls_with_its_options_and_with_the_environment(
    mtls_svc: RunningService,
    pki: Pki,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = ["--target", mtls_svc.target, "--token", TOKEN]
    client = ["--tls-cert", str(pki.client.cert), "--tls-key", str(pki.client.key)]

    assert tradectl([*target, "--tls-ca", str(pki.ca), *client, "--json", "status"]) == 0
    assert '"state": "TRADING_STATE_ACTIVE"' in capsys.readouterr().out

    monkeypatch.setenv("TRADING_TLS_CA", str(pki.ca))
    monkeypatch.setenv("TRADING_TLS_CLIENT_CERT", str(pki.client.cert))
    monkeypatch.setenv("TRADING_TLS_CLIENT_KEY", str(pki.client.key))
    assert tradectl([*target, "--json", "status"]) == 0
    assert '"state": "TRADING_STATE_ACTIVE"' in capsys.readouterr().out


def test_tradectl_names_a_tls_file_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    with pytest.raises(SystemExit) as exited:
        tradectl(["--token", TOKEN, "--tls-ca", str(missing), "status"])

    assert exited.value.code == EXIT_USAGE
    assert f"TLS CA file {missing} cannot be read" in capsys.readouterr().err


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv_tool("grpcurl")), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_grpcurl_over_tls_and_mtls_as_the_readme_says(
    start_service: StartService, pki: Pki, tmp_path: Path
) -> None:
    auth = f"authorization: Bearer {TOKEN}"
    tls = start_service(**tls_settings(pki.server))
    listed = grpcurl("-cacert", str(pki.ca), "-H", auth, tls.target, "list")
    assert listed.returncode == 0, listed.stderr
    assert "trading.v1.TradingService" in listed.stdout.split()
    assert grpcurl("-plaintext", tls.target, "list").returncode != 0

    mtls = start_service(
        database_url=f"sqlite:///{tmp_path / 'mtls.db'}",  # a log of its own: one lease each
        **tls_settings(pki.server, client_ca=pki.ca),
    )
    mutual = ["-cacert", str(pki.ca), "-cert", str(pki.client.cert), "-key", str(pki.client.key)]
    called = grpcurl(
        *mutual, "-H", auth, "-d", "{}", mtls.target, "trading.v1.TradingService/GetStatus"
    )
    assert called.returncode == 0, called.stderr
    assert "TRADING_STATE_ACTIVE" in called.stdout
    assert grpcurl("-cacert", str(pki.ca), mtls.target, "list").returncode != 0


# ---------------------------------------------------------------------------
# Plaintext only on loopback
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1:50051", True),
        ("127.45.6.7:50051", True),
        ("localhost:50051", True),
        ("LocalHost:50051", True),
        ("[::1]:50051", True),
        ("unix:/run/trading.sock", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        (":50051", False),
        ("10.1.2.3:50051", False),
        ("trading.example.com:50051", False),
        ("localhost.example.com:50051", False),
        ("[::ffff:10.0.0.1]:50051", False),
    ],
)
def test_which_listen_addresses_are_local(address: str, local: bool) -> None:
    assert is_local_address(address) is local


@given(st.ip_addresses())
def test_the_loopback_rule_is_the_ip_standard_one(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    address = f"[{ip}]:50051" if ip.version == 6 else f"{ip}:50051"
    assert is_loopback_host(str(ip)) is ip.is_loopback
    assert is_local_address(address) is ip.is_loopback


@given(st.from_regex(r"[a-z][a-z0-9-]{0,15}(\.[a-z][a-z0-9-]{0,15}){0,3}", fullmatch=True))
def test_no_host_name_but_localhost_counts_as_loopback(name: str) -> None:
    # A name may resolve anywhere, today or after the next DNS change.
    assert is_local_address(f"{name}:50051") is (name == "localhost")


def test_plaintext_on_every_interface_is_refused_before_anything_is_opened(
    calendar: Any, tmp_path: Path
) -> None:
    database = tmp_path / "audit.db"
    settings = Settings(database_url=f"sqlite:///{database}")

    with pytest.raises(TransportConfigError) as refused:
        create_server(settings, "0.0.0.0:0", token=TOKEN, calendar=calendar)

    message = str(refused.value)
    assert "refusing to serve plaintext on 0.0.0.0:0" in message
    assert "TRADING_TLS_CERT and TRADING_TLS_KEY" in message
    assert "TRADING_ALLOW_PLAINTEXT=yes" in message
    assert not database.exists()  # no audit log was created for a service that never ran


def test_plaintext_on_every_interface_starts_when_explicitly_allowed(
    calendar: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'audit.db'}", trading_allow_plaintext=True
    )
    with caplog.at_level(logging.WARNING, logger="server.tls"):
        service = create_server(settings, "0.0.0.0:0", token=TOKEN, calendar=calendar)
    service.server.start()
    try:
        assert status_code(f"127.0.0.1:{service.port}") == grpc.StatusCode.OK
    finally:
        service.stop(0)
    assert any("PLAINTEXT on 0.0.0.0:0" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------
# Bad server configuration: refused at start, naming the file
# ---------------------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path: Path, pki: Pki) -> dict[str, Path]:
    junk = tmp_path / "junk.pem"
    junk.write_text("this is not a certificate\n")
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key(pki.server.key.read_bytes(), password=None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return {"missing": tmp_path / "missing.pem", "junk": junk, "encrypted": encrypted}


@pytest.mark.parametrize(
    ("cert", "key", "client_ca", "named", "says"),
    [
        ("missing", "server.key", None, "TRADING_TLS_CERT", "cannot be read: No such file"),
        ("junk", "server.key", None, "TRADING_TLS_CERT", "is not a PEM certificate"),
        ("server.pem", "missing", None, "TRADING_TLS_KEY", "cannot be read"),
        ("server.pem", "junk", None, "TRADING_TLS_KEY", "is not an unencrypted PEM private key"),
        ("server.pem", "encrypted", None, "TRADING_TLS_KEY", "is not an unencrypted PEM"),
        ("server.pem", "client.key", None, "TRADING_TLS_KEY", "is not the private key of"),
        ("server.pem", "server.key", "junk", "TRADING_TLS_CLIENT_CA", "is not a PEM certificate"),
        ("server.pem", "server.key", "missing", "TRADING_TLS_CLIENT_CA", "cannot be read"),
    ],
)
def test_unusable_tls_files_are_refused_naming_the_setting_and_the_file(
    pki: Pki,
    bad_files: dict[str, Path],
    cert: str,
    key: str,
    client_ca: str | None,
    named: str,
    says: str,
) -> None:
    files = {
        "server.pem": pki.server.cert,
        "server.key": pki.server.key,
        "client.key": pki.client.key,
        **bad_files,
    }
    settings = {
        "TRADING_TLS_CERT": cert,
        "TRADING_TLS_KEY": key,
        "TRADING_TLS_CLIENT_CA": client_ca,
    }
    with pytest.raises(TransportConfigError) as refused:
        server_credentials(files[cert], files[key], files[client_ca] if client_ca else None)

    message = str(refused.value)
    assert message.startswith(f"{named} {files[str(settings[named])]} ")
    assert says in message


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"trading_tls_cert": "server.pem"}, "TRADING_TLS_CERT is set but TRADING_TLS_KEY is not"),
        ({"trading_tls_key": "server.key"}, "TRADING_TLS_KEY is set but TRADING_TLS_CERT is not"),
        ({"trading_tls_client_ca": "ca.pem"}, "TRADING_TLS_CLIENT_CA needs TRADING_TLS_CERT"),
    ],
)
def test_half_a_tls_configuration_is_a_settings_error(given: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**given)
    assert says in str(refused.value)


def test_a_blank_tls_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADING_TLS_CERT", "")
    monkeypatch.setenv("TRADING_TLS_KEY", " ")
    settings = Settings()
    assert settings.trading_tls_cert is None and settings.trading_tls_key is None


# ---------------------------------------------------------------------------
# trading-server: exit 2 and one line for a refused configuration
# ---------------------------------------------------------------------------


@pytest.fixture
def server_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[pytest.MonkeyPatch]:
    """What trading-server reads, and the signal handlers it installs put back after."""
    for name in ("TRADING_BROKER", "TRADING_TOKENS_FILE", "TRADING_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'audit.db'}")
    monkeypatch.setenv("TRADING_API_KEY", TOKEN)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield monkeypatch
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


def test_trading_server_refuses_plaintext_off_loopback_with_exit_2(
    server_environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert trading_server(["--listen", "0.0.0.0:0"]) == EXIT_USAGE

    line = _one_line(capsys)
    assert line.startswith("trading-server: bad configuration: refusing to serve plaintext")
    assert "TRADING_ALLOW_PLAINTEXT=yes" in line
    assert not (tmp_path / "audit.db").exists()


def test_trading_server_refuses_a_key_that_is_not_the_certificates_with_exit_2(
    server_environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pki: Pki
) -> None:
    server_environment.setenv("TRADING_TLS_CERT", str(pki.server.cert))
    server_environment.setenv("TRADING_TLS_KEY", str(pki.client.key))

    assert trading_server(["--listen", "127.0.0.1:0"]) == EXIT_USAGE

    line = _one_line(capsys)
    assert f"TRADING_TLS_KEY {pki.client.key} is not the private key" in line


@pytest.mark.slow
def test_trading_server_says_it_serves_mutual_tls_and_answers_a_client_certificate(
    pki: Pki, tmp_path: Path
) -> None:
    log_path = tmp_path / "server.log"
    env = {
        **os.environ,
        "TRADING_API_KEY": TOKEN,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "TRADING_TLS_CERT": str(pki.server.cert),
        "TRADING_TLS_KEY": str(pki.server.key),
        "TRADING_TLS_CLIENT_CA": str(pki.ca),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.main", "--listen", "127.0.0.1:0"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        line = _wait_for_serving_line(log_path, proc)
        assert "over mutual TLS" in line
        port = line.split("127.0.0.1:", 1)[1].split()[0]
        client = pki.client
        code = status_code(
            f"127.0.0.1:{port}", ca_file=pki.ca, cert_file=client.cert, key_file=client.key
        )
        assert code == grpc.StatusCode.OK
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log_path.read_text()


def _wait_for_serving_line(log_path: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if "serving trading.v1.TradingService on" in line:
                return line
        assert proc.poll() is None, log_path.read_text()
        time.sleep(0.1)
    raise AssertionError("trading-server never said it was serving")
