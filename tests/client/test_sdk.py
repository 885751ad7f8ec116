"""The SDK against the fake service: every RPC carries the bearer token and returns the reply."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf.message import Message

from tests.client.fake_service import TOKEN, FakeTradingService
from trading_sdk import AsyncTradingClient, TradingClient, market_event
from trading_sdk.client import LimitValue
from trading_sdk.v1 import advisor_pb2, audit_pb2, events_pb2, market_pb2, orders_pb2, risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

BEARER = f"Bearer {TOKEN}"
NEW_YORK = ZoneInfo("America/New_York")


# --- market_event -----------------------------------------------------------


def test_market_event_converts_an_aware_datetime_to_a_utc_timestamp() -> None:
    event = market_event(
        "AAPL", 101.5, volume=1200, timestamp=datetime(2004, 3, 15, 15, 59, tzinfo=NEW_YORK)
    )

    assert (event.symbol, event.price, event.volume) == ("AAPL", 101.5, 1200.0)
    assert event.timestamp.ToDatetime(tzinfo=UTC) == datetime(2004, 3, 15, 20, 59, tzinfo=UTC)


def test_market_event_keeps_microseconds() -> None:
    moment = datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

    assert market_event("IBM", 1.0, timestamp=moment).timestamp.ToDatetime(tzinfo=UTC) == moment


def test_market_event_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        market_event("AAPL", 1.0, timestamp=datetime(2004, 3, 15, 20, 59))


def test_market_event_leaves_optional_fields_unset() -> None:
    event = market_event("MSFT", 27.95)

    assert not event.HasField("timestamp")
    assert event.volume == 0.0


def test_client_refuses_an_empty_token() -> None:
    with pytest.raises(ValueError, match="no token"):
        TradingClient("127.0.0.1:1", "")


# --- every unary RPC, sync and async ----------------------------------------

Client = TradingClient | AsyncTradingClient
WHEN = datetime(2010, 5, 6, 18, 45, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    method: str
    call: Callable[[Client], object]
    request: Message
    reply: Message


ORDER = orders_pb2.Order(order_id="o-1", symbol="AAPL", status=orders_pb2.ORDER_STATUS_CANCELLED)
UNARY_CASES = [
    Case(
        "GetStatus",
        lambda c: c.get_status(),
        pb.GetStatusRequest(),
        pb.GetStatusResponse(version="9"),
    ),
    Case(
        "ListStrategies",
        lambda c: c.list_strategies(),
        pb.ListStrategiesRequest(),
        pb.ListStrategiesResponse(strategies=[pb.Strategy(name="sma")]),
    ),
    Case(
        "ActivateStrategy",
        lambda c: c.activate_strategy("sma"),
        pb.ActivateStrategyRequest(name="sma"),
        pb.ActivateStrategyResponse(strategy=pb.Strategy(name="sma", active=True)),
    ),
    Case(
        "DeactivateStrategy",
        lambda c: c.deactivate_strategy("sma"),
        pb.DeactivateStrategyRequest(name="sma"),
        pb.DeactivateStrategyResponse(strategy=pb.Strategy(name="sma")),
    ),
    Case(
        "GetRiskStatus",
        lambda c: c.get_risk_status(recent_decisions=5),
        pb.GetRiskStatusRequest(recent_decisions=5),
        pb.GetRiskStatusResponse(active=True, approvals=3),
    ),
    Case(
        "ActivateRisk",
        lambda c: c.activate_risk("back"),
        pb.ActivateRiskRequest(reason="back"),
        pb.ActivateRiskResponse(trading=risk_pb2.TradingStatus(reason="back")),
    ),
    Case(
        "DeactivateRisk",
        lambda c: c.deactivate_risk("halt"),
        pb.DeactivateRiskRequest(reason="halt"),
        pb.DeactivateRiskResponse(trading=risk_pb2.TradingStatus(reason="halt")),
    ),
    Case(
        "GetExecutionStatus",
        lambda c: c.get_execution_status(),
        pb.GetExecutionStatusRequest(),
        pb.GetExecutionStatusResponse(broker="paper", open_orders=2),
    ),
    Case(
        "ListActiveOrders",
        lambda c: c.list_active_orders("AAPL", page_size=10, page_token="p1"),
        pb.ListActiveOrdersRequest(symbol="AAPL", page_size=10, page_token="p1"),
        pb.ListActiveOrdersResponse(orders=[ORDER], next_page_token="p2"),
    ),
    Case(
        "ListOrderHistory",
        lambda c: c.list_order_history(page_size=1),
        pb.ListOrderHistoryRequest(page_size=1),
        pb.ListOrderHistoryResponse(orders=[ORDER], next_page_token="p2"),
    ),
    Case(
        "CancelOrder",
        lambda c: c.cancel_order("o-1"),
        pb.CancelOrderRequest(order_id="o-1"),
        pb.CancelOrderResponse(order=ORDER),
    ),
    Case(
        "GetAccount",
        lambda c: c.get_account(),
        pb.GetAccountRequest(),
        pb.GetAccountResponse(account=orders_pb2.Account(cash="100000.00", currency="USD")),
    ),
    Case(
        "ListPositions",
        lambda c: c.list_positions(),
        pb.ListPositionsRequest(),
        pb.ListPositionsResponse(positions=[orders_pb2.Position(symbol="IBM", quantity="-5")]),
    ),
    Case(
        "SimulateMarketEvent",
        lambda c: c.simulate_market_event("IBM", 120.25, volume=10, timestamp=WHEN),
        pb.SimulateMarketEventRequest(event=market_event("IBM", 120.25, 10, WHEN)),
        pb.SimulateMarketEventResponse(seq=42),
    ),
    Case(
        "VerifyAudit",
        lambda c: c.verify_audit(),
        pb.VerifyAuditRequest(),
        pb.VerifyAuditResponse(ok=True, checked=7, last_seq=7),
    ),
    Case(
        "Analyze",
        lambda c: c.analyze(["IBM"], "why?", advisor_pb2.ANALYSIS_KIND_EDUCATION),
        pb.AnalyzeRequest(
            symbols=["IBM"], question="why?", kind=advisor_pb2.ANALYSIS_KIND_EDUCATION
        ),
        pb.AnalyzeResponse(analysis=advisor_pb2.Analysis(analysis_id="a1", text="t")),
    ),
    Case(
        "ListIdeas",
        lambda c: c.list_ideas(advisor_pb2.IDEA_STATE_PENDING_APPROVAL, page_size=2),
        pb.ListIdeasRequest(state=advisor_pb2.IDEA_STATE_PENDING_APPROVAL, page_size=2),
        pb.ListIdeasResponse(ideas=[advisor_pb2.TradeIdea(idea_id="i2.1")], next_page_token="2"),
    ),
    Case(
        "GetIdea",
        lambda c: c.get_idea("i2.1"),
        pb.GetIdeaRequest(idea_id="i2.1"),
        pb.GetIdeaResponse(idea=advisor_pb2.TradeIdea(idea_id="i2.1")),
    ),
    Case(
        "DecideIdea",
        lambda c: c.decide_idea("i2.1", advisor_pb2.IDEA_DECISION_REJECT, "too risky"),
        pb.DecideIdeaRequest(
            idea_id="i2.1", decision=advisor_pb2.IDEA_DECISION_REJECT, reason="too risky"
        ),
        pb.DecideIdeaResponse(idea=advisor_pb2.TradeIdea(idea_id="i2.1", decided_by="operator")),
    ),
    Case(
        "SetTradingState",
        lambda c: c.set_trading_state("reducing", "cut exposure"),
        pb.SetTradingStateRequest(state=risk_pb2.TRADING_STATE_REDUCING, reason="cut exposure"),
        pb.SetTradingStateResponse(
            trading=risk_pb2.TradingStatus(state=risk_pb2.TRADING_STATE_REDUCING),
            changed=True,
            message="OPERATOR set to REDUCING; trading is REDUCING",
        ),
    ),
    Case(
        "Flatten",
        lambda c: c.flatten("end of day"),
        pb.FlattenRequest(reason="end of day"),
        pb.FlattenResponse(cancelled=[ORDER]),
    ),
    Case(
        "UpdateRiskLimits",
        lambda c: c.update_risk_limits({"max_order_notional": Decimal("1E+4")}, "tighter"),
        pb.UpdateRiskLimitsRequest(limits={"max_order_notional": "10000"}, reason="tighter"),
        pb.UpdateRiskLimitsResponse(
            limits={"max_order_notional": "10000"}, previous={"max_order_notional": "25000"}
        ),
    ),
    Case(
        "CheckOrder",
        lambda c: c.check_order("IBM", "sell", 5, limit_price=Decimal("120.50")),
        pb.CheckOrderRequest(
            symbol="IBM", side=orders_pb2.SIDE_SELL, quantity="5", limit_price="120.50"
        ),
        pb.CheckOrderResponse(approved=True, reference_price="120.50", reduces_position=True),
    ),
    Case(
        "SubmitOrder",
        lambda c: c.submit_order("AAPL", orders_pb2.SIDE_BUY, "10", reason="by hand"),
        pb.SubmitOrderRequest(
            symbol="AAPL",
            side=orders_pb2.SIDE_BUY,
            quantity="10",
            type=orders_pb2.ORDER_TYPE_MARKET,
            reason="by hand",
        ),
        pb.SubmitOrderResponse(
            decision=risk_pb2.RiskDecision(decision_id="d1", approved=True), order=ORDER
        ),
    ),
]


def test_the_cases_cover_every_unary_rpc_of_the_contract() -> None:
    service = pb.DESCRIPTOR.services_by_name["TradingService"]
    unary = {m.name for m in service.methods if not (m.client_streaming or m.server_streaming)}

    assert {case.method for case in UNARY_CASES} == unary


@pytest.mark.parametrize("case", UNARY_CASES, ids=lambda case: case.method)
def test_sync_client_sends_the_request_with_the_token_and_returns_the_reply(
    fake: FakeTradingService, case: Case
) -> None:
    fake.replies[case.method] = [case.reply]

    with TradingClient(fake.target, TOKEN) as client:
        result = case.call(client)

    assert result == case.reply
    [call] = fake.calls
    assert (call.method, call.request) == (case.method, case.request)
    assert call.metadata["authorization"] == BEARER


@pytest.mark.parametrize("case", UNARY_CASES, ids=lambda case: case.method)
def test_async_client_sends_the_request_with_the_token_and_returns_the_reply(
    fake: FakeTradingService, case: Case
) -> None:
    fake.replies[case.method] = [case.reply]

    async def scenario() -> object:
        async with AsyncTradingClient(fake.target, TOKEN) as client:
            pending = case.call(client)
            assert inspect.isawaitable(pending)
            return await pending

    assert asyncio.run(scenario()) == case.reply
    [call] = fake.calls
    assert (call.method, call.request) == (case.method, case.request)
    assert call.metadata["authorization"] == BEARER


# --- errors and channels ----------------------------------------------------


def test_a_status_from_the_service_propagates_as_rpc_error(fake: FakeTradingService) -> None:
    fake.errors["ActivateStrategy"] = (grpc.StatusCode.NOT_FOUND, "no strategy 'nope'")

    with TradingClient(fake.target, TOKEN) as client, pytest.raises(grpc.RpcError) as raised:
        client.activate_strategy("nope")

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "no strategy 'nope'"


def test_the_async_client_raises_aio_rpc_error(fake: FakeTradingService) -> None:
    fake.errors["GetAccount"] = (grpc.StatusCode.UNAVAILABLE, "broker down")

    async def scenario() -> grpc.StatusCode:
        async with AsyncTradingClient(fake.target, TOKEN) as client:
            try:
                await client.get_account()
            except grpc.aio.AioRpcError as error:
                return error.code()
        raise AssertionError("no error raised")

    assert asyncio.run(scenario()) == grpc.StatusCode.UNAVAILABLE


def test_closing_closes_only_a_channel_the_client_created(fake: FakeTradingService) -> None:
    with grpc.insecure_channel(fake.target) as channel:
        with TradingClient("ignored", TOKEN, channel=channel) as borrowing:
            borrowing.get_status()
        # Still open: the caller's channel outlives the client.
        assert (
            TradingClient("ignored", TOKEN, channel=channel).get_status() == pb.GetStatusResponse()
        )

    owning = TradingClient(fake.target, TOKEN)
    owning.close()
    with pytest.raises(ValueError, match="closed channel"):
        owning.get_status()


# --- streams ------------------------------------------------------------------

EVENTS = [market_event("AAPL", 100.0 + i, timestamp=WHEN + timedelta(days=i)) for i in range(5)]


def test_stream_market_data_sends_one_message_per_batch(fake: FakeTradingService) -> None:
    fake.replies["StreamMarketData"] = [
        pb.StreamMarketDataResponse(events_accepted=5, batches_accepted=3)
    ]
    ready = pb.StreamMarketDataRequest(events=EVENTS[4:])

    with TradingClient(fake.target, TOKEN) as client:
        summary = client.stream_market_data([EVENTS[:2], EVENTS[2:4], ready])

    assert summary.events_accepted == 5
    [call] = fake.calls
    assert [list(r.events) for r in call.requests if isinstance(r, pb.StreamMarketDataRequest)] == [
        EVENTS[:2],
        EVENTS[2:4],
        EVENTS[4:],
    ]
    assert call.metadata["authorization"] == BEARER


def test_async_stream_market_data_takes_an_async_iterable(fake: FakeTradingService) -> None:
    fake.replies["StreamMarketData"] = [pb.StreamMarketDataResponse(batches_accepted=2)]

    async def produce() -> AsyncIterator[list[market_pb2.MarketEvent]]:
        yield EVENTS[:3]
        yield EVENTS[3:]

    async def scenario() -> pb.StreamMarketDataResponse:
        async with AsyncTradingClient(fake.target, TOKEN) as client:
            return await client.stream_market_data(produce())

    assert asyncio.run(scenario()).batches_accepted == 2
    [call] = fake.calls
    assert [len(r.events) for r in call.requests if isinstance(r, pb.StreamMarketDataRequest)] == [
        3,
        2,
    ]
    assert call.metadata["authorization"] == BEARER


def _events(*seqs: int) -> list[Message]:
    return [pb.SubscribeEventsResponse(event=events_pb2.Event(seq=seq)) for seq in seqs]


def test_subscribe_events_yields_events_and_cancel_ends_the_stream_quietly(
    fake: FakeTradingService,
) -> None:
    fake.replies["SubscribeEvents"] = _events(1, 2, 3)
    fake.hold_open.add("SubscribeEvents")

    with TradingClient(fake.target, TOKEN) as client:
        stream = client.subscribe_events([events_pb2.EVENT_TYPE_ORDER], ["AAPL"], from_seq=1)
        received = [next(stream).seq for _ in range(3)]
        stream.cancel()
        after_cancel = list(stream)

    assert received == [1, 2, 3]
    assert after_cancel == []
    [call] = fake.calls
    assert call.request == pb.SubscribeEventsRequest(
        types=[events_pb2.EVENT_TYPE_ORDER], symbols=["AAPL"], from_seq=1
    )
    assert call.metadata["authorization"] == BEARER


def test_a_stream_that_fails_raises_rpc_error(fake: FakeTradingService) -> None:
    fake.errors["SubscribeEvents"] = (grpc.StatusCode.INVALID_ARGUMENT, "unknown symbol")

    with TradingClient(fake.target, TOKEN) as client, pytest.raises(grpc.RpcError) as raised:
        list(client.subscribe_events(symbols=["??"]))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_async_subscribe_events_yields_events_and_cancels(fake: FakeTradingService) -> None:
    fake.replies["SubscribeEvents"] = _events(4, 5)
    fake.hold_open.add("SubscribeEvents")

    async def scenario() -> tuple[list[int], list[int]]:
        async with AsyncTradingClient(fake.target, TOKEN) as client:
            stream = client.subscribe_events(from_seq=4)
            received = [(await anext(stream)).seq for _ in range(2)]
            stream.cancel()
            return received, [event.seq async for event in stream]

    assert asyncio.run(scenario()) == ([4, 5], [])
    assert fake.calls[0].metadata["authorization"] == BEARER


def test_query_audit_sends_the_filters_and_yields_records(fake: FakeTradingService) -> None:
    records = [audit_pb2.AuditRecord(seq=seq, event_type="OrderUpdated") for seq in (3, 4)]
    fake.replies["QueryAudit"] = [pb.QueryAuditResponse(record=r) for r in records]
    until = datetime(2010, 5, 6, 16, 0, tzinfo=NEW_YORK)

    with TradingClient(fake.target, TOKEN) as client:
        got = list(
            client.query_audit(from_seq=3, until=until, event_types=["OrderUpdated"], symbol="IBM")
        )

    assert got == records
    [call] = fake.calls
    assert isinstance(call.request, pb.QueryAuditRequest)
    assert (call.request.from_seq, call.request.to_seq, call.request.symbol) == (3, 0, "IBM")
    assert list(call.request.event_types) == ["OrderUpdated"]
    assert not call.request.HasField("since")
    assert call.request.until.ToDatetime(tzinfo=UTC) == datetime(2010, 5, 6, 20, 0, tzinfo=UTC)
    assert call.metadata["authorization"] == BEARER


def test_async_query_audit_yields_records(fake: FakeTradingService) -> None:
    fake.replies["QueryAudit"] = [pb.QueryAuditResponse(record=audit_pb2.AuditRecord(seq=9))]

    async def scenario() -> list[int]:
        async with AsyncTradingClient(fake.target, TOKEN) as client:
            return [record.seq async for record in client.query_audit(order_id="o-1")]

    assert asyncio.run(scenario()) == [9]
    assert isinstance(fake.calls[0].request, pb.QueryAuditRequest)
    assert fake.calls[0].request.order_id == "o-1"


# --- the risk gate's requests: names or enum values, decimal text ---------------


def _sent(fake: FakeTradingService, call: Callable[[TradingClient], object]) -> Message:
    with TradingClient(fake.target, TOKEN) as client:
        call(client)
    return fake.calls[-1].request


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("active", risk_pb2.TRADING_STATE_ACTIVE),
        ("reducing", risk_pb2.TRADING_STATE_REDUCING),
        ("HALTED", risk_pb2.TRADING_STATE_HALTED),
        (risk_pb2.TRADING_STATE_HALTED, risk_pb2.TRADING_STATE_HALTED),
    ],
)
def test_set_trading_state_takes_a_name_or_the_enum_value(
    fake: FakeTradingService,
    state: risk_pb2.TradingState.ValueType | str,
    expected: risk_pb2.TradingState.ValueType,
) -> None:
    # A name in any letter case works at run time; the type checker only knows lower case.
    request = _sent(fake, lambda c: c.set_trading_state(state, "why"))  # type: ignore[arg-type]

    assert request == pb.SetTradingStateRequest(state=expected, reason="why")


def test_set_trading_state_resets_the_daily_loss_breaker_with_its_cause(
    fake: FakeTradingService,
) -> None:
    request = _sent(fake, lambda c: c.set_trading_state("active", cause="daily_loss_breaker"))

    assert request == pb.SetTradingStateRequest(
        state=risk_pb2.TRADING_STATE_ACTIVE, cause=risk_pb2.TRADING_CAUSE_DAILY_LOSS_BREAKER
    )


def test_an_unknown_name_is_refused_before_anything_is_sent(fake: FakeTradingService) -> None:
    with TradingClient(fake.target, TOKEN) as client:
        with pytest.raises(ValueError, match="unknown trading state 'paused'"):
            client.set_trading_state("paused", "why")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown side 'short'"):
            client.check_order("IBM", "short", 1)  # type: ignore[arg-type]

    assert fake.calls == []


@pytest.mark.parametrize(
    ("kwargs", "order_type", "limit_price"),
    [
        ({}, orders_pb2.ORDER_TYPE_MARKET, ""),
        ({"limit_price": Decimal("99.5")}, orders_pb2.ORDER_TYPE_LIMIT, "99.5"),
        ({"limit_price": "99.50", "order_type": "limit"}, orders_pb2.ORDER_TYPE_LIMIT, "99.50"),
        # Told MARKET with a price: sent as told, for the service to refuse with its reason.
        ({"limit_price": 99, "order_type": "market"}, orders_pb2.ORDER_TYPE_MARKET, "99"),
    ],
)
def test_submit_order_is_limit_when_a_price_is_given_unless_told(
    fake: FakeTradingService,
    kwargs: dict[str, object],
    order_type: orders_pb2.OrderType.ValueType,
    limit_price: str,
) -> None:
    request = _sent(fake, lambda c: c.submit_order("IBM", "buy", 3, **kwargs))  # type: ignore[arg-type]

    assert request == pb.SubmitOrderRequest(
        symbol="IBM",
        side=orders_pb2.SIDE_BUY,
        quantity="3",
        type=order_type,
        limit_price=limit_price,
    )


def test_quantities_and_prices_go_as_plain_decimal_text(fake: FakeTradingService) -> None:
    request = _sent(
        fake, lambda c: c.check_order("IBM", "buy", Decimal("1E+2"), limit_price=Decimal("0.10"))
    )

    assert request == pb.CheckOrderRequest(
        symbol="IBM", side=orders_pb2.SIDE_BUY, quantity="100", limit_price="0.10"
    )


def test_a_float_quantity_is_refused_rather_than_rounded(fake: FakeTradingService) -> None:
    with TradingClient(fake.target, TOKEN) as client, pytest.raises(TypeError, match="float"):
        client.submit_order("IBM", "buy", 0.1)  # type: ignore[arg-type]

    assert fake.calls == []


def test_update_risk_limits_sends_booleans_and_durations_as_the_service_reads_them(
    fake: FakeTradingService,
) -> None:
    limits: dict[str, LimitValue] = {
        "daily_loss_resets_next_session": False,
        "duplicate_window": timedelta(minutes=2),
        "max_data_age": timedelta(seconds=0.5),
        "max_orders_per_window": 12,
        "min_confidence": "0.7",
    }

    request = _sent(fake, lambda c: c.update_risk_limits(limits, "review"))

    assert request == pb.UpdateRiskLimitsRequest(
        limits={
            "daily_loss_resets_next_session": "false",
            "duplicate_window": "120",
            "max_data_age": "0.5",
            "max_orders_per_window": "12",
            "min_confidence": "0.7",
        },
        reason="review",
    )
