"""The demo's advisor phase against the fake service, and the demo server's environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from client import demo
from tests.client.advisor_samples import IDEA_ID, analysis, approved_idea, pending_idea
from tests.client.fake_service import TOKEN, FakeTradingService
from trading_sdk.client import TradingClient
from trading_sdk.v1 import advisor_pb2
from trading_sdk.v1 import trading_service_pb2 as pb


@pytest.fixture
def client(fake: FakeTradingService) -> Iterator[TradingClient]:
    with TradingClient(fake.target, TOKEN, timeout=5.0) as connected:
        yield connected


def test_the_advisor_phase_reviews_the_portfolio_and_approves_the_first_pending_idea(
    fake: FakeTradingService, client: TradingClient, capsys: pytest.CaptureFixture[str]
) -> None:
    rejected = pending_idea()
    rejected.idea_id = "i506.0"
    rejected.state = advisor_pb2.IDEA_STATE_REJECTED
    second = pending_idea()
    second.idea_id = "i506.2"
    fake.replies["Analyze"] = [
        pb.AnalyzeResponse(analysis=analysis(), ideas=[rejected, pending_idea(), second])
    ]
    fake.replies["DecideIdea"] = [pb.DecideIdeaResponse(idea=approved_idea())]

    demo.advisor_phase(client)

    assert fake.calls_to("Analyze")[0].request == pb.AnalyzeRequest(
        symbols=demo.SYMBOLS, kind=advisor_pb2.ANALYSIS_KIND_PORTFOLIO_REVIEW
    )
    [decision] = fake.calls_to("DecideIdea")
    assert decision.request == pb.DecideIdeaRequest(
        idea_id=IDEA_ID, decision=advisor_pb2.IDEA_DECISION_APPROVE, reason="approved by the demo"
    )
    out = capsys.readouterr().out
    assert "analysis a506 PORTFOLIO_REVIEW by offline/offline-rules" in out
    assert out.endswith(
        f"== Phase 2: the demo's human approves idea {IDEA_ID} ==\n"
        f"{approved_idea().idea_id} BUY 101 MSFT @ market (ref 27.95) APPROVED confidence 0.60"
        " by alice\n"
        "  decided at 2013-03-01T21:00:00Z: fits the plan\n"
        "  risk decision d509: APPROVED BUY 101 MSFT @ 27.95 confidence 0.60 from idea:i506.1\n"
        "  order o510 BUY 101 MSFT MARKET FILLED filled 101 @ 27.9640\n"
    )


def test_a_refused_approval_is_printed_and_the_demo_carries_on(
    fake: FakeTradingService, client: TradingClient, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["Analyze"] = [pb.AnalyzeResponse(analysis=analysis(), ideas=[pending_idea()])]
    fake.errors["DecideIdea"] = (grpc.StatusCode.FAILED_PRECONDITION, "the idea expired")

    demo.advisor_phase(client)  # raises nothing

    assert capsys.readouterr().out.endswith(
        "approval refused: FAILED_PRECONDITION: the idea expired\n"
    )


def test_without_a_pending_idea_nothing_is_decided(
    fake: FakeTradingService, client: TradingClient, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["Analyze"] = [pb.AnalyzeResponse(analysis=analysis())]

    demo.advisor_phase(client)

    assert fake.calls_to("DecideIdea") == []
    assert capsys.readouterr().out.endswith("(no idea pending approval)\n")


def test_the_demo_server_gets_no_openai_settings_so_it_uses_the_offline_analyst(
    tmp_path: Path,
) -> None:
    inherited = {"PATH": "/bin", "OPENAI_API_KEY": "sk-x", "openai_base_url": "http://x"}

    env = demo.server_environment(inherited, tmp_path, "tok")

    assert env["PATH"] == "/bin"
    assert not any(name.upper().startswith("OPENAI_") for name in env)
    assert env["TRADING_API_KEY"] == "tok"
    assert env["TRADING_CLOCK"] == "event"


def test_the_demo_ends_with_a_backtest_of_the_bundled_bars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo.backtest_phase(tmp_path / "report")
    printed = capsys.readouterr().out
    assert "Phase 3" in printed and "Total return" in printed and "Buy and hold" in printed
    assert "AAPL, GOOG, IBM, MSFT" in printed
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5  # equity and one price chart a symbol
