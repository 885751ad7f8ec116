"""tradectl with no service at the address, as a real process: every command that
needs the service says so in one line naming the address, why, and how to start it
or point at it, and exits 4; never gRPC's own text, never a traceback.
(test_cli_failures.py has the name that does not resolve and the deadline.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest

from client.cli import EXIT_UNREACHABLE, unreachable_line
from tests.client.fake_service import TOKEN
from tests.support.calls import FailedCall
from tests.support.tools import REPO


@pytest.fixture
def closed_target() -> Iterator[str]:
    """A loopback address nothing listens on (bound, never listened, so nobody takes it)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{held.getsockname()[1]}"


def run(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", "--target", target, *args],
        cwd=REPO,
        env={**os.environ, "TRADING_API_KEY": TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
    )


def expected(target: str) -> str:
    return (
        f"error: cannot reach the trading service at {target} (connection refused): start it "
        "with 'make run', or point --target (or TRADING_TARGET) at it\n"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["orders", "active"],
        ["positions"],
        ["account"],
        ["ideas", "list"],
        ["strategies", "list"],
        ["--json", "status"],
    ],
    ids=lambda command: " ".join(command),
)
def test_every_command_says_it_in_one_line_and_exits_4(
    closed_target: str, command: list[str]
) -> None:
    result = run(closed_target, *command)

    assert (result.returncode, result.stdout, result.stderr) == (
        EXIT_UNREACHABLE,
        "",
        expected(closed_target),
    )


def test_stream_says_it_at_once_instead_of_retrying_five_times(closed_target: str) -> None:
    result = run(closed_target, "stream")  # the bundled file

    # A retry would first print "warning: UNAVAILABLE ... (try 2 of 5)": stderr is
    # the one line, so the service never reached stopped the stream before its tries.
    assert (result.returncode, result.stderr) == (EXIT_UNREACHABLE, expected(closed_target))


# What gRPC (1.85) says, word for word, for each way of not connecting.
@pytest.mark.parametrize(
    ("code", "details", "why"),
    [
        (
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
            "Failed to connect to remote host: Connection refused",
            "connection refused",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            "errors resolving no-such-host.invalid:50051: [field:hostname lookup error:"
            "address lookup failed for no-such-host.invalid:50051: Domain name not found]",
            "the name does not resolve",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.255.255.1:50051: "
            "Failed to connect to remote host: getsockopt(SO_ERROR): Network is unreachable",
            "no route to it",
        ),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", "no connection within 2.5s"),
    ],
    ids=["refused", "dns", "no route", "deadline"],
)
def test_the_line_says_why_in_a_persons_words(
    code: grpc.StatusCode, details: str, why: str
) -> None:
    line = unreachable_line(FailedCall(code, details), "db:50051", 2.5)

    assert line == (
        f"error: cannot reach the trading service at db:50051 ({why}): start it with "
        "'make run', or point --target (or TRADING_TARGET) at it"
    )


def test_a_failed_tls_handshake_points_at_the_tls_options_not_at_make_run() -> None:
    details = (
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50051: Tls "
        "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:100000f7:SSL routines:"
        "OPENSSL_internal:WRONG_VERSION_NUMBER"
    )

    line = unreachable_line(FailedCall(grpc.StatusCode.UNAVAILABLE, details), "127.0.0.1:50051", 10)

    assert line == (
        "error: no TLS connection to the trading service at 127.0.0.1:50051 (the handshake "
        "failed): check --tls, --tls-ca and --tls-server-name against how it serves"
    )
