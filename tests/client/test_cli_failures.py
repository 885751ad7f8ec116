"""tradectl failing politely, as a real process: no service at the address is one
line and exit 4; a reader that closes the pipe early (`| head -1`) ends it quietly
with exit 0."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest

from client.cli import EXIT_UNREACHABLE, _unreachable
from tests.conftest import TOKEN, RunningService, StartService
from tests.support.calls import FailedCall
from tests.support.market import SESSION
from tests.support.tools import REPO
from trading_sdk.client import market_event

PIPE_BUFFER = 64 * 1024  # Linux's default: output beyond it is written after `head` has gone


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "client.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "TRADING_API_KEY": TOKEN}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(*args),
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, never listened, so nobody takes it)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


@pytest.mark.parametrize("command", [["status"], ["audit", "query"], ["risk", "status"]])
def test_no_service_at_the_address_is_one_line_naming_it_and_exit_4(
    closed_port: int, command: list[str]
) -> None:
    target = f"127.0.0.1:{closed_port}"

    result = _run("--target", target, *command)

    assert result.returncode == EXIT_UNREACHABLE == 4
    assert result.stderr == (
        f"error: cannot reach the trading service at {target} (connection refused): start it "
        "with 'make run', or point --target (or TRADING_TARGET) at it\n"
    )
    assert result.stdout == ""


def test_a_name_that_does_not_resolve_is_unreachable_too() -> None:
    result = _run("--target", "no-such-host.invalid:50051", "status")

    assert result.returncode == 4
    assert result.stderr.startswith(
        "error: cannot reach the trading service at no-such-host.invalid:50051 "
        "(the name does not resolve): start it with 'make run'"
    )
    assert result.stderr.count("\n") == 1
    assert "UNAVAILABLE" not in result.stderr


def test_deadline_exceeded_counts_as_unreachable_only_when_nothing_takes_a_connection(
    closed_port: int,
) -> None:
    deadline = FailedCall(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        slow = f"127.0.0.1:{listening.getsockname()[1]}"

        assert _unreachable(deadline, f"127.0.0.1:{closed_port}", 1.0)
        assert not _unreachable(deadline, slow, 1.0)  # reached, merely slow: the raw error
    # An UNAVAILABLE the service itself sent is its own error, not "cannot reach".
    assert not _unreachable(
        FailedCall(grpc.StatusCode.UNAVAILABLE, "audit store unreachable"), slow, 1.0
    )


@pytest.fixture
def svc_with_rows(start_service: StartService) -> RunningService:
    """A service whose audit log prints to more than a pipe's buffer, in text and JSON."""
    svc = start_service()
    for k in range(300):
        svc.client.simulate_market_event("SPY", 100 + k % 7, 100, SESSION + timedelta(seconds=k))
    big = [
        market_event("QQQ", 400 + k % 11, 100, SESSION + timedelta(minutes=10, seconds=k))
        for k in range(1500)
    ]
    svc.client.stream_market_data([big])  # one message, journaled as one large record
    return svc


@pytest.mark.parametrize("json", [False, True], ids=["text", "json"])
def test_audit_query_into_head_ends_quietly_with_exit_0(
    svc_with_rows: RunningService, json: bool
) -> None:
    options = ["--json"] if json else []
    tradectl = subprocess.Popen(
        _command("--target", svc_with_rows.target, *options, "audit", "query"),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert tradectl.stdout is not None and tradectl.stderr is not None
    head = subprocess.Popen(["head", "-1"], stdin=tradectl.stdout, stdout=subprocess.PIPE)
    tradectl.stdout.close()  # head holds the only reader: once it exits, the pipe is broken
    first, _ = head.communicate(timeout=60)
    stderr = tradectl.stderr.read().decode()
    status = tradectl.wait(60)

    assert head.returncode == 0
    assert first.startswith(b"{" if json else b"#1 ")
    assert status == 0, stderr
    assert stderr == ""  # no traceback, no "Exception ignored ... BrokenPipeError"


def test_the_whole_log_is_more_than_a_pipe_holds(svc_with_rows: RunningService) -> None:
    """So the test above really writes into a pipe whose reader has gone."""
    result = _run("--target", svc_with_rows.target, "audit", "query")

    assert result.returncode == 0, result.stderr
    assert len(result.stdout.encode()) > PIPE_BUFFER
