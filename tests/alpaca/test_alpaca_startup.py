"""Starting the service with TRADING_BROKER=alpaca: a configuration it cannot
trade on refuses to start with one line naming the setting (exit 2, no
traceback, no network call for a live endpoint without the opt-in); Alpaca
settings beside the paper broker are warned about; and Alpaca not answering at
start-up starts the service halted by the broker, until a sweep reconciles."""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.main import main
from tests.alpaca.service import (
    ACTIVE,
    HALTED,
    WAIT_S,
    priced_fake,
    reconciliations,
    start_on,
    trading_state,
)
from tests.conftest import StartService
from tests.fakes.alpaca_server import FakeAlpaca
from tests.support.polling import wait_for
from trading_sdk.v1 import risk_pb2

EXIT_USAGE = 2
ENVIRONMENT = (
    "TRADING_BROKER",
    "TRADING_LIVE",
    "ALPACA_API_KEY",
    "ALPACA_SECRET_KEY",
    "ALPACA_BASE_URL",
    "ALPACA_STREAM_URL",
    "TRADING_TOKENS_FILE",
)


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with priced_fake() as alpaca:
        yield alpaca


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """The environment `trading-server` reads, with nothing of the machine's broker
    settings in it; the signal handlers `main` installs are put back afterwards."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'audit.db'}")
    monkeypatch.setenv("TRADING_LISTEN", "127.0.0.1:0")
    monkeypatch.setenv("TRADING_API_KEY", "test-token")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield monkeypatch
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _refusal(capsys: pytest.CaptureFixture[str]) -> str:
    """What main printed: exactly one line, and no traceback."""
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1, captured.err
    return lines[0]


def test_a_missing_secret_key_refuses_to_start_naming_it(
    environment: pytest.MonkeyPatch, fake: FakeAlpaca, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("TRADING_BROKER", "alpaca")
    environment.setenv("ALPACA_API_KEY", fake.key_id)
    environment.setenv("ALPACA_BASE_URL", fake.base_url)

    assert main([]) == EXIT_USAGE

    line = _refusal(capsys)
    assert "ALPACA_SECRET_KEY" in line
    assert "is not set" in line
    assert fake.requests == []  # refused before anything was asked of Alpaca


def test_keys_alpaca_refuses_stop_the_start_naming_the_settings(
    environment: pytest.MonkeyPatch, fake: FakeAlpaca, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("TRADING_BROKER", "alpaca")
    environment.setenv("ALPACA_API_KEY", "PKWRONG")
    environment.setenv("ALPACA_SECRET_KEY", "not-the-secret")
    environment.setenv("ALPACA_BASE_URL", fake.base_url)
    environment.setenv("ALPACA_STREAM_URL", fake.stream_url)

    assert main([]) == EXIT_USAGE

    line = _refusal(capsys)
    assert "ALPACA_API_KEY" in line and "ALPACA_SECRET_KEY" in line
    assert "401" in line
    assert [r.route for r in fake.requests] == ["GET /v2/account"]
    assert fake.submissions() == []


def test_a_live_endpoint_without_trading_live_refuses_to_start_without_a_network_call(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    looked_up: list[Any] = []

    def no_network(*args: Any, **kwargs: Any) -> Any:
        looked_up.append(args[:2])
        raise OSError("this test allows no network call")

    environment.setattr(socket, "getaddrinfo", no_network)
    environment.setattr(socket, "create_connection", no_network)
    environment.setenv("TRADING_BROKER", "alpaca")
    environment.setenv("ALPACA_API_KEY", "AKLIVEKEY")
    environment.setenv("ALPACA_SECRET_KEY", "live-secret")
    environment.setenv("ALPACA_BASE_URL", "https://api.alpaca.markets")

    assert main([]) == EXIT_USAGE

    line = _refusal(capsys)
    assert "TRADING_LIVE" in line
    assert "https://api.alpaca.markets" in line
    assert looked_up == []


def test_alpaca_settings_with_the_paper_broker_are_warned_about(
    start_service: StartService, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="server.broker_factory"):
        running = start_service(
            trading_broker="paper", alpaca_api_key="PKUNUSED", alpaca_secret_key="unused"
        )

    warned = [r.getMessage() for r in caplog.records if r.name == "server.broker_factory"]
    assert any(
        "ALPACA_API_KEY" in m and "ALPACA_SECRET_KEY" in m and "TRADING_BROKER=paper" in m
        for m in warned
    ), warned
    assert running.client.get_status().broker == "paper"


def test_alpaca_unreachable_at_start_up_starts_halted_by_the_broker_until_a_sweep(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    fake.set_down(True)
    running = start_on(start_service, fake, ready=False, trading_broker_sweep_seconds=0.2)
    client = running.client

    trading = client.get_status().trading
    assert trading.state == HALTED
    assert (trading.changed_by, trading.cause) == ("system:broker", risk_pb2.TRADING_CAUSE_BROKER)
    assert "start-up reconciliation has not run" in trading.reason
    assert "503" in trading.reason
    assert reconciliations(client) == []

    fake.set_down(False)
    wait_for(lambda: trading_state(client) == ACTIVE, "trading to resume", WAIT_S)
    [startup, *_] = reconciliations(client)
    assert startup["reason"] == "start-up reconciliation"
    status = client.get_status()
    assert status.broker_account == fake.account_number
    assert {c.cause for c in client.get_risk_status().causes} <= {risk_pb2.TRADING_CAUSE_OPERATOR}
