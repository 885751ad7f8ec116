"""The advisor through the SDK, with the real `openai` client talking to the fake
OpenAI server: analyze, list, decide, and what the model's answers turn into."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import partial

import grpc
import pytest

from tests.conftest import RunningService, StartService
from tests.fakes.openai_server import (
    MODEL,
    Answer,
    FakeOpenAI,
    content,
    idea,
    ideas_reply,
    refusal,
    server_error,
    slow,
)
from tests.support.aapl import LAST_TICK, SYMBOL
from tests.support.calls import failure_of
from trading_sdk.client import market_event
from trading_sdk.v1 import advisor_pb2, events_pb2, orders_pb2

APPROVE = advisor_pb2.IDEA_DECISION_APPROVE
REJECT = advisor_pb2.IDEA_DECISION_REJECT
PENDING = advisor_pb2.IDEA_STATE_PENDING_APPROVAL
GOOD = ideas_reply("AAPL rose 5.6% today; momentum can fade.", [idea(SYMBOL, "BUY", 10)])


def price_at(running: RunningService, price: float, moment: datetime) -> None:
    """One AAPL tick: moves the last price and, with the event clock, the time."""
    running.client.stream_market_data([[market_event(SYMBOL, price, 100.0, moment)]])


def _propose(running: RunningService, fake: FakeOpenAI) -> advisor_pb2.TradeIdea:
    fake.always(GOOD)
    [proposed] = running.client.analyze([SYMBOL], "Should I buy some AAPL?").ideas
    return proposed


# --- the whole flow ----------------------------------------------------------


def test_an_approved_idea_goes_through_risk_to_an_order_and_a_fill(
    advised: RunningService, fake_openai: FakeOpenAI
) -> None:
    client = advised.client
    fake_openai.always(GOOD)

    response = client.analyze([SYMBOL], "Should I buy some AAPL?")
    [proposed] = response.ideas
    assert (proposed.symbol, proposed.side, proposed.quantity) == (
        SYMBOL,
        orders_pb2.SIDE_BUY,
        "10",
    )
    assert (proposed.reference_price, proposed.notional, proposed.state) == (
        "190.0",
        "1900.0",
        PENDING,
    )
    life = proposed.expires_at.ToDatetime() - proposed.created_at.ToDatetime()
    assert life == timedelta(minutes=15)
    assert list(response.analysis.idea_ids) == [proposed.idea_id]
    assert [i.idea_id for i in client.list_ideas(PENDING).ideas] == [proposed.idea_id]

    decided = client.decide_idea(proposed.idea_id, APPROVE, "fits my plan").idea

    assert decided.state == advisor_pb2.IDEA_STATE_APPROVED
    assert (decided.decided_by, decided.decision_reason) == ("operator", "fits my plan")
    decision = decided.risk_decision
    assert decision.approved, [f"{v.code}: {v.detail}" for v in decision.verdicts if not v.passed]
    assert decision.signal.source == f"idea:{proposed.idea_id}"
    assert decided.decision_id == decision.decision_id
    assert decided.order.status == orders_pb2.ORDER_STATUS_FILLED
    assert (decided.order_id, decided.order.decision_id) == (
        decided.order.order_id,
        decision.decision_id,
    )
    assert client.get_idea(proposed.idea_id).idea == decided
    [position] = client.list_positions().positions
    assert (position.symbol, position.quantity) == (SYMBOL, "10")


def test_the_audit_log_follows_an_idea_from_analysis_to_order(
    advised: RunningService, fake_openai: FakeOpenAI
) -> None:
    client = advised.client
    proposed = _propose(advised, fake_openai)
    order_id = client.decide_idea(proposed.idea_id, APPROVE, "ok").idea.order_id

    by_idea = [r.event_type for r in client.query_audit(idea_id=proposed.idea_id)]
    [analysis] = client.query_audit(event_types=["AnalysisCompleted"])
    payload = json.loads(analysis.payload_json)["analysis"]
    by_order = [r.event_type for r in client.query_audit(order_id=order_id)]

    assert by_idea == ["IdeaUpdated", "IdeaUpdated", "SignalGenerated", "RiskDecisionMade"]
    assert (payload["prompt_version"], payload["model"], payload["analyst"]) == (
        "advisor_v1",
        MODEL,
        "openai",
    )
    assert payload["requested_by"] == "operator"
    # new, the broker's acknowledgement, accepted, the broker's fill, filled
    assert by_order == ["OrderUpdated", "BrokerReportReceived"] * 2 + ["OrderUpdated"]
    assert client.verify_audit().ok


def test_idea_events_reach_subscribers(advised: RunningService, fake_openai: FakeOpenAI) -> None:
    proposed = _propose(advised, fake_openai)
    types = [events_pb2.EVENT_TYPE_ANALYSIS, events_pb2.EVENT_TYPE_IDEA]

    with advised.client.subscribe_events(types=types, from_seq=1) as events:
        first, second = next(events), next(events)

    assert first.analysis.idea_ids == [proposed.idea_id]
    assert (second.idea.idea_id, second.idea.state) == (proposed.idea_id, PENDING)
    assert second.caused_by == first.seq


def test_the_model_sees_the_portfolio_prices_and_limits_under_a_conservative_prompt(
    advised: RunningService, fake_openai: FakeOpenAI
) -> None:
    _propose(advised, fake_openai)

    [request] = fake_openai.requests
    document = request.user_document
    [market] = document["markets"]
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["response_format"]["type"] == "json_schema"
    assert request.body["response_format"]["json_schema"]["strict"] is True
    assert "not financial advice" in request.system_prompt
    assert "risks" in request.system_prompt
    assert document["risk_limits"]["max_position_notional"] == "5000.00"
    assert (market["symbol"], market["last_price"], len(market["recent_prices"])) == (
        SYMBOL,
        "190.0",
        40,
    )
    assert document["account"] == {"cash": "100000", "equity": "100000"}
    assert document["request"]["question"] == "Should I buy some AAPL?"


def test_the_advisor_counters_show_in_get_status(
    advised: RunningService, fake_openai: FakeOpenAI
) -> None:
    client = advised.client
    first, second = _propose(advised, fake_openai), _propose(advised, fake_openai)
    client.decide_idea(first.idea_id, APPROVE, "")
    client.decide_idea(second.idea_id, REJECT, "not now")

    counters = client.get_status().advisor

    assert (counters.analyst, counters.model) == ("openai", "gpt-4o-mini")
    assert (counters.analyses, counters.ideas_proposed) == (2, 2)
    assert (counters.ideas_approved, counters.ideas_rejected, counters.ideas_expired) == (1, 1, 0)


# --- decisions ---------------------------------------------------------------


def test_a_rejected_idea_is_recorded_and_sends_nothing(
    advised: RunningService, fake_openai: FakeOpenAI
) -> None:
    client = advised.client
    proposed = _propose(advised, fake_openai)

    decided = client.decide_idea(proposed.idea_id, REJECT, "too concentrated").idea

    assert decided.state == advisor_pb2.IDEA_STATE_REJECTED
    assert (decided.decided_by, decided.decision_reason) == ("operator", "too concentrated")
    assert not decided.HasField("risk_decision") and not decided.HasField("order")
    assert list(client.list_order_history().orders) == []
    assert client.get_risk_status().approvals + client.get_risk_status().rejections == 0


def test_deciding_twice_is_refused_and_changes_nothing(
    advised: RunningService, fake_openai: FakeOpenAI
) -> None:
    client = advised.client
    proposed = _propose(advised, fake_openai)
    approved = client.decide_idea(proposed.idea_id, APPROVE, "").idea
    orders = client.list_order_history()

    for decision in (APPROVE, REJECT):
        failure = failure_of(partial(client.decide_idea, proposed.idea_id, decision, ""))
        assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
        assert f"idea {proposed.idea_id} was already APPROVED by operator" in failure.details

    assert client.get_idea(proposed.idea_id).idea == approved
    assert client.list_order_history() == orders
    assert client.get_status().advisor.ideas_approved == 1
    refusals = client.query_audit(event_types=["RequestRefused"])
    assert [json.loads(r.payload_json)["method"] for r in refusals] == ["DecideIdea"] * 2


def test_an_unknown_idea_is_not_found(advised: RunningService) -> None:
    for call in (
        lambda: advised.client.get_idea("i404.1"),
        lambda: advised.client.decide_idea("i404.1", APPROVE, ""),
    ):
        failure = failure_of(call)
        assert failure.code == grpc.StatusCode.NOT_FOUND
        assert "no idea with id 'i404.1'" in failure.details


def test_an_expired_idea_cannot_be_approved(
    advised: RunningService, fake_openai: FakeOpenAI
) -> None:
    client = advised.client
    proposed = _propose(advised, fake_openai)
    price_at(advised, 190.0, LAST_TICK + timedelta(minutes=16))

    failure = failure_of(lambda: client.decide_idea(proposed.idea_id, APPROVE, ""))

    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "expired" in failure.details
    assert client.get_idea(proposed.idea_id).idea.state == advisor_pb2.IDEA_STATE_EXPIRED
    assert [i.idea_id for i in client.list_ideas(advisor_pb2.IDEA_STATE_EXPIRED).ideas] == [
        proposed.idea_id
    ]
    assert list(client.list_order_history().orders) == []
    assert client.get_status().advisor.ideas_expired == 1


def test_expiry_counts_at_once_and_the_next_read_journals_it(
    advised: RunningService, fake_openai: FakeOpenAI
) -> None:
    client = advised.client
    proposed = _propose(advised, fake_openai)
    price_at(advised, 190.0, LAST_TICK + timedelta(minutes=15))

    assert client.get_status().advisor.ideas_expired == 1
    assert list(client.list_ideas(PENDING).ideas) == []
    updates = list(client.query_audit(idea_id=proposed.idea_id))
    assert [json.loads(u.payload_json)["idea"]["state"] for u in updates] == [
        "PENDING_APPROVAL",
        "EXPIRED",
    ]
    assert client.get_status().advisor.ideas_expired == 1


def test_an_approval_is_judged_on_the_price_now(
    advised: RunningService, fake_openai: FakeOpenAI
) -> None:
    client = advised.client
    proposed = _propose(advised, fake_openai)
    price_at(advised, 200.0, LAST_TICK + timedelta(minutes=1))  # +5.26%, band 5%

    failure = failure_of(lambda: client.decide_idea(proposed.idea_id, APPROVE, ""))

    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "AAPL has moved 5.26% since idea" in failure.details
    assert client.get_idea(proposed.idea_id).idea.state == PENDING

    price_at(advised, 195.0, LAST_TICK + timedelta(minutes=2))  # back within the band
    decided = client.decide_idea(proposed.idea_id, APPROVE, "").idea

    assert decided.risk_decision.signal.reference_price == "195.0"
    assert decided.order.status == orders_pb2.ORDER_STATUS_FILLED


def test_an_approved_idea_meets_the_risk_gate_like_any_signal(
    advised: RunningService, fake_openai: FakeOpenAI
) -> None:
    client = advised.client
    proposed = _propose(advised, fake_openai)
    client.deactivate_risk("market turmoil")

    decided = client.decide_idea(proposed.idea_id, APPROVE, "").idea

    assert decided.state == advisor_pb2.IDEA_STATE_APPROVED
    assert not decided.risk_decision.approved
    assert "RISK_ENGINE_DEACTIVATED" in [v.code for v in decided.risk_decision.verdicts]
    assert not decided.HasField("order")
    assert list(client.list_order_history().orders) == []


# --- what the model answers ----------------------------------------------------


def test_invalid_ideas_are_dropped_with_reasons_in_the_analysis_and_the_audit(
    advised: RunningService, fake_openai: FakeOpenAI
) -> None:
    fake_openai.always(
        ideas_reply(
            "Some ideas.",
            [
                idea(SYMBOL, "BUY", 10),
                idea("ZZZZ", "BUY", 1),
                idea(SYMBOL, "BUY", 0),
                idea(SYMBOL, "BUY", -5),
                idea(SYMBOL, "BUY", 1000),
                idea(SYMBOL, "HOLD", 1),
                idea(SYMBOL, "BUY", 1, risks=[]),
                {"symbol": SYMBOL},
            ],
        )
    )

    response = advised.client.analyze([SYMBOL])

    assert [i.quantity for i in response.ideas] == ["10"]
    dropped = list(response.analysis.dropped)
    expected = [
        "idea 6 from the model is malformed (side: Input should be 'BUY' or 'SELL')",
        "idea 8 from the model is malformed",
        "ZZZZ BUY: unknown symbol 'ZZZZ'",
        "AAPL BUY: quantity must be positive, got 0",
        "AAPL BUY: quantity must be positive, got -5",
        "AAPL BUY: notional 190000.00 exceeds the position ceiling 5000.00",
        "AAPL BUY: it names no risks",
    ]
    assert len(dropped) == len(expected)
    for reason, start in zip(dropped, expected, strict=True):
        assert reason.startswith(start)
    [record] = advised.client.query_audit(event_types=["AnalysisCompleted"])
    assert json.loads(record.payload_json)["analysis"]["dropped"] == dropped
    assert advised.client.get_status().advisor.ideas_dropped == len(expected)


@pytest.mark.parametrize(
    ("answer", "text", "dropped"),
    [
        (refusal("I can't give investment advice."), "declined to answer: I can't give", ""),
        (content(None), "returned nothing", ""),
        (content("   "), "returned nothing", ""),
        (content('{"analysis": "cut off'), "could not be read", "not valid JSON"),
        (content('["not", "an", "object"]'), "did not follow", "no 'analysis' text"),
    ],
    ids=["refusal", "null", "blank", "malformed-json", "wrong-shape"],
)
def test_an_answer_without_usable_content_gives_an_analysis_that_says_so(
    advised: RunningService, fake_openai: FakeOpenAI, answer: Answer, text: str, dropped: str
) -> None:
    fake_openai.always(answer)

    response = advised.client.analyze([SYMBOL])

    assert text in response.analysis.text
    assert list(response.ideas) == []
    assert any("No " in w for w in response.analysis.warnings)
    assert any("Not financial advice" in w for w in response.analysis.warnings)
    assert dropped in "".join(response.analysis.dropped)


def test_transient_server_errors_are_retried_by_the_sdk(
    advised: RunningService, fake_openai: FakeOpenAI
) -> None:
    fake_openai.then(server_error(500), server_error(503))
    fake_openai.always(GOOD)

    response = advised.client.analyze([SYMBOL])

    assert len(response.ideas) == 1
    assert len(fake_openai.requests) == 3


# --- outages -----------------------------------------------------------------------


@pytest.fixture
def impatient(start_service: StartService, fake_openai: FakeOpenAI) -> RunningService:
    """No retries and a short timeout, so an outage is quick to see."""
    return start_service(
        openai_api_key="sk-test",
        openai_base_url=fake_openai.base_url,
        openai_timeout_seconds=0.5,
        openai_max_retries=0,
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (slow(30), "did not answer within 0.5s"),
        (server_error(500), "answered HTTP 500"),
        (server_error(401), "refused the API key (HTTP 401): check OPENAI_API_KEY"),
    ],
    ids=["slow", "server-error", "bad-key"],
)
def test_an_openai_outage_is_unavailable_and_the_rest_of_the_service_answers(
    impatient: RunningService, fake_openai: FakeOpenAI, answer: Answer, message: str
) -> None:
    client = impatient.client
    fake_openai.then(answer)

    failure = failure_of(lambda: client.analyze([SYMBOL]))

    assert failure.code == grpc.StatusCode.UNAVAILABLE
    assert message in failure.details
    assert "The rest of the service is not affected" in failure.details
    status = client.get_status()
    assert status.advisor.analyst_unavailable == 1
    price_at(impatient, 190.0, LAST_TICK)
    assert client.get_account().account.equity == "100000"
    [refused] = client.query_audit(event_types=["RequestRefused"])
    assert json.loads(refused.payload_json)["method"] == "Analyze"
    fake_openai.always(GOOD)
    assert len(client.analyze([SYMBOL]).ideas) == 1


def test_an_unreachable_openai_is_unavailable(start_service: StartService) -> None:
    with FakeOpenAI() as gone:
        base_url = gone.base_url
    running = start_service(
        openai_api_key="sk-test", openai_base_url=base_url, openai_max_retries=0
    )

    failure = failure_of(lambda: running.client.analyze())

    assert failure.code == grpc.StatusCode.UNAVAILABLE
    assert f"cannot reach OpenAI at {base_url}" in failure.details
    assert running.client.get_status().advisor.analyst_unavailable == 1
