"""Bad configuration stops start-up with a clear line; bytes that are not a valid
message get INVALID_ARGUMENT, never INTERNAL."""

from __future__ import annotations

import os
import subprocess
import sys

import grpc
import pytest

from tests.conftest import TOKEN, RunningService
from tests.support.tools import REPO


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "DATABASE_URL"),
        ("mysql://root@127.0.0.1/x", "DATABASE_URL"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/nothing", "unavailable"),
    ],
)
def test_a_bad_database_url_stops_start_up_with_one_clear_line(url: str, expected: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "TRADING_API_KEY": "x"}
    result = subprocess.run(
        [sys.executable, "-m", "server.main", "--listen", "127.0.0.1:0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "cannot start" in result.stderr and expected.lower() in result.stderr.lower()


def test_a_bad_clock_setting_is_refused_before_anything_starts() -> None:
    env = {**os.environ, "TRADING_CLOCK": "sundial", "TRADING_API_KEY": "x"}
    result = subprocess.run(
        [sys.executable, "-m", "server.main"], cwd=REPO, env=env, capture_output=True, text=True
    )

    assert result.returncode == 2
    assert "bad configuration" in result.stderr and "trading_clock" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        ("/trading.v1.TradingService/ActivateStrategy", b"\x0a\x02\xff\xfe"),  # not UTF-8
        ("/trading.v1.TradingService/SimulateMarketEvent", b"\x0a\x05\x0a\x03SP"),  # truncated
    ],
)
def test_undecodable_requests_are_invalid_argument(
    svc: RunningService, method: str, payload: bytes
) -> None:
    before = svc.client.verify_audit().last_seq
    with grpc.insecure_channel(svc.target) as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        with pytest.raises(grpc.RpcError) as refused:
            call(payload, metadata=(("authorization", f"Bearer {TOKEN}"),))

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "could not be decoded" in (refused.value.details() or "")
    assert svc.client.verify_audit().last_seq == before
