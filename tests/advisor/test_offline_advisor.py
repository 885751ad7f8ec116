"""The advisor with no OpenAI key: the offline analyst, through the SDK; and the
requests every analyst refuses."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from tests.conftest import RunningService, StartService
from tests.support.aapl import RISING, SYMBOL
from tests.support.calls import bearer, failure_of
from tests.support.market import ticks
from trading_sdk.v1 import advisor_pb2, orders_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

APPROVE = advisor_pb2.IDEA_DECISION_APPROVE


def test_without_a_key_the_offline_analyst_proposes_and_the_flow_completes(
    offline: RunningService,
) -> None:
    client = offline.client

    response = client.analyze([SYMBOL])

    analysis = response.analysis
    assert (analysis.analyst, analysis.model, analysis.prompt_version) == (
        "offline",
        "offline-rules",
        "offline_rules_v1",
    )
    assert analysis.kind == advisor_pb2.ANALYSIS_KIND_PORTFOLIO_REVIEW
    assert "trend up" in analysis.text
    [proposed] = response.ideas
    # Idle cash: half the 5000 ceiling at 190 is 13 shares.
    assert (proposed.symbol, proposed.side, proposed.quantity) == (
        SYMBOL,
        orders_pb2.SIDE_BUY,
        "13",
    )
    decided = client.decide_idea(proposed.idea_id, APPROVE, "small and within limits").idea
    assert decided.risk_decision.approved
    assert decided.order.status == orders_pb2.ORDER_STATUS_FILLED
    assert client.get_status().advisor.analyst == "offline"


def test_the_same_inputs_give_the_same_analysis_and_ids(
    start_service: StartService, tmp_path: Path
) -> None:
    answers = []
    for name in ("first", "second"):
        running = start_service(openai_api_key=None, database_url=f"sqlite:///{tmp_path / name}.db")
        running.client.stream_market_data([ticks(SYMBOL, RISING)])
        answers.append(running.client.analyze([SYMBOL], "What now?"))

    assert answers[0] == answers[1]
    assert len(answers[0].ideas) == 1


def test_education_proposes_no_idea(offline: RunningService) -> None:
    response = offline.client.analyze(kind=advisor_pb2.ANALYSIS_KIND_EDUCATION)

    assert list(response.ideas) == []
    assert "How this service manages risk" in response.analysis.text
    assert any("not financial advice" in w.lower() for w in response.analysis.warnings)


def test_ideas_are_listed_oldest_first_a_page_at_a_time(offline: RunningService) -> None:
    client = offline.client
    first = client.analyze([SYMBOL]).ideas[0].idea_id
    second = client.analyze([SYMBOL]).ideas[0].idea_id

    page = client.list_ideas(page_size=1)
    rest = client.list_ideas(page_size=1, page_token=page.next_page_token)

    assert [i.idea_id for i in page.ideas] == [first]
    assert ([i.idea_id for i in rest.ideas], rest.next_page_token) == ([second], "")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.AnalyzeRequest(symbols=["aapl!"]), "symbols 'aapl!' is malformed"),
        (pb.AnalyzeRequest(symbols=[f"S{i}" for i in range(21)]), "at most 20 symbols"),
        (pb.AnalyzeRequest(kind=9), "kind 9 is not a known AnalysisKind"),  # type: ignore[arg-type]
        (pb.AnalyzeRequest(question="?" * 2001), "question is too long"),
        (pb.DecideIdeaRequest(idea_id="i1.1"), "decision must be IDEA_DECISION_APPROVE"),
        (pb.DecideIdeaRequest(decision=APPROVE), "idea_id is empty"),
        (pb.DecideIdeaRequest(idea_id="i1.1", decision=APPROVE, reason="x" * 501), "too long"),
        (pb.GetIdeaRequest(), "idea_id is empty"),
        (pb.ListIdeasRequest(state=9), "state 9 is not a known IdeaState"),  # type: ignore[arg-type]
        (pb.ListIdeasRequest(page_token="x"), "page_token is not one this service issued"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_bad_request_is_invalid_argument_and_changes_nothing(
    offline: RunningService, request_: object, message: str
) -> None:
    before = offline.client.verify_audit().last_seq
    stub = offline.client._stub
    method = getattr(stub, type(request_).__name__.removesuffix("Request"))

    failure = failure_of(lambda: method(request_, metadata=bearer()))

    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in failure.details
    assert offline.client.verify_audit().last_seq == before


def test_ideas_and_what_they_led_to_survive_a_restart(
    start_service: StartService, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    first = start_service(openai_api_key=None, database_url=url)
    first.client.stream_market_data([ticks(SYMBOL, RISING)])
    [idea] = first.client.analyze([SYMBOL]).ideas
    approved = first.client.decide_idea(idea.idea_id, APPROVE, "before the restart").idea
    first.stop()

    second = start_service(openai_api_key=None, database_url=url)
    restored = second.client.get_idea(idea.idea_id).idea

    assert restored == approved
    assert restored.order.status == orders_pb2.ORDER_STATUS_FILLED
    failure = failure_of(lambda: second.client.decide_idea(idea.idea_id, APPROVE, "again"))
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
