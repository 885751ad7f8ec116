"""Bad input gets a clear error and changes nothing (DESIGN.md invariant 7).

Every case runs through the SDK against the real server with the event clock
(so market events must carry a timestamp) after a crossover has left a filled
order and an open position behind; the state a user can see (audit log,
counters, positions, account, orders, strategies, trading state) is compared
before and after the refused request.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import grpc
import pytest

from tests.conftest import RunningService
from tests.support.calls import bearer, failure_of
from tests.support.market import SESSION, STRATEGY, ticks
from tests.support.state import Snapshot, journaled_ticks, snapshot
from trading_sdk.client import TradingClient, market_event
from trading_sdk.v1 import events_pb2, market_pb2, trading_service_pb2, trading_service_pb2_grpc

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
LATER = SESSION + timedelta(minutes=30)


def _unchanged_but_for_one_refusal(before: Snapshot, client: TradingClient) -> None:
    """A refused StreamMarketData message is journaled as one RequestRefused record
    (the stream may have committed earlier messages, so the refusal is on file);
    apart from that record nothing may change."""
    after = snapshot(client)
    assert after.last_seq == before.last_seq + 1
    (refusal,) = client.query_audit(from_seq=after.last_seq)
    assert refusal.event_type == "RequestRefused"
    assert after.chain_ok
    counters = trading_service_pb2.Counters()
    counters.CopyFrom(after.counters)
    counters.audit_events = before.counters.audit_events
    assert counters == before.counters
    assert (after.trading, after.positions, after.strategies, after.orders, after.account) == (
        before.trading,
        before.positions,
        before.strategies,
        before.orders,
        before.account,
    )


# --- market events ------------------------------------------------------------------


BAD_EVENTS = [
    pytest.param("", 500.0, 10.0, LATER, "symbol is empty", id="empty-symbol"),
    pytest.param("spy", 500.0, 10.0, LATER, "'spy' is malformed", id="lower-case-symbol"),
    pytest.param(
        "TOO-LONG-SYMBOL", 500.0, 10.0, LATER, "'TOO-LONG-SYMBOL' is malformed", id="long-symbol"
    ),
    pytest.param("A B", 500.0, 10.0, LATER, "'A B' is malformed", id="symbol-with-space"),
    pytest.param("SPY", 0.0, 10.0, LATER, "price must be finite and > 0", id="zero-price"),
    pytest.param("SPY", -1.5, 10.0, LATER, "price must be finite and > 0", id="negative-price"),
    pytest.param("SPY", math.nan, 10.0, LATER, "price must be finite and > 0", id="nan-price"),
    pytest.param("SPY", math.inf, 10.0, LATER, "price must be finite and > 0", id="inf-price"),
    pytest.param("SPY", 500.0, -1.0, LATER, "volume must be finite and >= 0", id="negative-volume"),
    pytest.param("SPY", 500.0, math.nan, LATER, "volume must be finite and >= 0", id="nan-volume"),
    pytest.param("SPY", 500.0, math.inf, LATER, "volume must be finite and >= 0", id="inf-volume"),
    pytest.param("SPY", 500.0, 10.0, None, "timestamp is required", id="missing-timestamp"),
    pytest.param("SPY", 500.0, 10.0, "future", "in the future", id="timestamp-a-day-ahead"),
    pytest.param(
        "SPY",
        500.0,
        10.0,
        datetime(1960, 1, 4, 15, tzinfo=UTC),
        "before 1970",
        id="timestamp-before-epoch",
    ),
]


def _stamp(when: datetime | str | None) -> datetime | None:
    """The parameter's timestamp; "future" is a day ahead of the wall clock now."""
    if when == "future":
        return datetime.now(UTC) + timedelta(days=1)
    assert when is None or isinstance(when, datetime)
    return when


@pytest.mark.parametrize(("symbol", "price", "volume", "when", "message"), BAD_EVENTS)
def test_simulate_refuses_a_bad_event_and_changes_nothing(
    traded: RunningService,
    symbol: str,
    price: float,
    volume: float,
    when: datetime | str | None,
    message: str,
) -> None:
    client = traded.client
    before = snapshot(client)
    failure = failure_of(lambda: client.simulate_market_event(symbol, price, volume, _stamp(when)))
    assert failure.code == INVALID
    assert message in failure.details
    assert snapshot(client) == before


@pytest.mark.parametrize(("symbol", "price", "volume", "when", "message"), BAD_EVENTS)
def test_stream_refuses_a_message_with_a_bad_event_whole(
    traded: RunningService,
    symbol: str,
    price: float,
    volume: float,
    when: datetime | str | None,
    message: str,
) -> None:
    """The bad event is the 5th of its message: the 4 good ones before it are not
    applied either (the position's market price would move if they were)."""
    client = traded.client
    before = snapshot(client)
    batch = ticks("SPY", [555.0, 556.0, 557.0, 558.0], start=LATER)
    batch.append(market_event(symbol, price, volume, _stamp(when)))
    failure = failure_of(lambda: client.stream_market_data([batch]))
    assert failure.code == INVALID
    assert message in failure.details
    assert "event 4" in failure.details
    assert "message 0 refused" in failure.details
    _unchanged_but_for_one_refusal(before, client)


def test_a_refused_message_does_not_spoil_the_next_stream(traded: RunningService) -> None:
    """After refusals, good data with the same symbols is still accepted."""
    client = traded.client
    for bad in ("spy", "A B"):
        batch = [market_event(bad, 1.0, 1.0, LATER)]
        assert failure_of(partial(client.stream_market_data, [batch])).code == INVALID
    summary = client.stream_market_data([ticks("SPY", [600.0, 601.0], start=LATER)])
    assert (summary.events_accepted, summary.batches_accepted) == (2, 1)
    (position,) = client.list_positions().positions
    assert position.market_price == "601.0"


@pytest.mark.parametrize("nanos", [-1, 1_000_000_000], ids=["negative", "a-whole-second"])
def test_a_timestamp_with_out_of_range_nanos_is_refused(traded: RunningService, nanos: int) -> None:
    """A Timestamp's nanos must be 0..999999999 (google.protobuf.Timestamp); other
    values are not a time at all, so they are refused rather than carried over."""
    client = traded.client
    before = snapshot(client)
    event = market_pb2.MarketEvent(symbol="SPY", price=500.0, volume=10.0)
    event.timestamp.seconds = int(LATER.timestamp())
    event.timestamp.nanos = nanos
    failure = failure_of(lambda: client.stream_market_data([[event]]))
    assert failure.code == INVALID
    assert f"event 0 (SPY): timestamp nanos must be 0 to 999999999, got {nanos}" in failure.details
    _unchanged_but_for_one_refusal(before, client)


def test_a_good_event_is_accepted_by_simulate(traded: RunningService) -> None:
    """The control for the refusals above: the same call with good values works,
    and its event is journaled."""
    client = traded.client
    before = snapshot(client)
    answer = client.simulate_market_event("SPY", 560.0, 10.0, LATER)
    assert answer.seq > before.last_seq
    (record,) = client.query_audit(from_seq=answer.seq, to_seq=answer.seq)
    assert record.event_type == "MarketDataReceived"
    (position,) = client.list_positions().positions
    assert position.market_price == "560.0"


def test_simulate_without_an_event_is_refused(
    traded: RunningService, channel: grpc.Channel
) -> None:
    before = snapshot(traded.client)
    stub = trading_service_pb2_grpc.TradingServiceStub(channel)
    failure = failure_of(
        lambda: stub.SimulateMarketEvent(
            trading_service_pb2.SimulateMarketEventRequest(), metadata=bearer(), timeout=10
        )
    )
    assert failure.code == INVALID
    assert "event is required" in failure.details
    assert snapshot(traded.client) == before


def test_an_empty_stream_message_is_refused(traded: RunningService) -> None:
    client = traded.client
    before = snapshot(client)
    failure = failure_of(lambda: client.stream_market_data([[]]))
    assert failure.code == INVALID
    assert "no events" in failure.details
    _unchanged_but_for_one_refusal(before, client)


# --- other RPCs ------------------------------------------------------------------------

Call = Callable[[TradingClient], object]

BAD_REQUESTS = [
    pytest.param(
        lambda c: c.activate_strategy("no_such"),
        NOT_FOUND,
        "no strategy named",
        id="activate-unknown",
    ),
    pytest.param(
        lambda c: c.deactivate_strategy("no_such"),
        NOT_FOUND,
        "no strategy named",
        id="deactivate-unknown",
    ),
    pytest.param(lambda c: c.activate_strategy(""), INVALID, "name is empty", id="activate-empty"),
    pytest.param(
        lambda c: c.deactivate_strategy(""), INVALID, "name is empty", id="deactivate-empty"
    ),
    pytest.param(
        lambda c: c.get_risk_status(recent_decisions=5000), INVALID, "at most 1000", id="risk-5000"
    ),
    pytest.param(
        lambda c: c.deactivate_risk("x" * 501), INVALID, "too long", id="halt-reason-too-long"
    ),
    pytest.param(
        lambda c: c.list_active_orders(page_size=5000), INVALID, "page_size", id="active-page-size"
    ),
    pytest.param(
        lambda c: c.list_order_history(page_size=1001), INVALID, "page_size", id="history-page-size"
    ),
    pytest.param(
        lambda c: c.list_order_history(page_token="abc"), INVALID, "page_token", id="token-letters"
    ),
    pytest.param(
        lambda c: c.list_active_orders(page_token="-1"), INVALID, "page_token", id="token-negative"
    ),
    pytest.param(
        lambda c: c.list_order_history(page_token="\u00b2"),
        INVALID,
        "page_token",
        id="token-superscript-digit",
    ),
    pytest.param(
        lambda c: c.list_active_orders(page_token="9" * 5000),
        INVALID,
        "page_token",
        id="token-too-many-digits",
    ),
    pytest.param(
        lambda c: c.list_active_orders(symbol="spy"), INVALID, "malformed", id="orders-bad-symbol"
    ),
    pytest.param(lambda c: c.cancel_order("o999999"), NOT_FOUND, "o999999", id="cancel-unknown"),
    pytest.param(lambda c: c.cancel_order(""), INVALID, "order_id is empty", id="cancel-empty"),
    pytest.param(
        lambda c: c.subscribe_events(types=[events_pb2.EVENT_TYPE_UNSPECIFIED]),
        INVALID,
        "UNSPECIFIED",
        id="subscribe-unspecified",
    ),
    pytest.param(
        lambda c: c.subscribe_events(types=[events_pb2.EventType.ValueType(99)]),
        INVALID,
        "99",
        id="subscribe-unknown-type",
    ),
    pytest.param(
        lambda c: c.subscribe_events(symbols=["A B"]),
        INVALID,
        "malformed",
        id="subscribe-bad-symbol",
    ),
    pytest.param(
        lambda c: c.query_audit(from_seq=5, to_seq=2), INVALID, "from_seq", id="audit-from-after-to"
    ),
    pytest.param(
        lambda c: c.query_audit(event_types=["NoSuchEvent"]),
        INVALID,
        "NoSuchEvent",
        id="audit-unknown-type",
    ),
    pytest.param(
        lambda c: c.query_audit(symbol="spy"), INVALID, "malformed", id="audit-bad-symbol"
    ),
]


@pytest.mark.parametrize(("call", "code", "message"), BAD_REQUESTS)
def test_bad_request_is_refused_with_a_clear_error_and_changes_nothing(
    traded: RunningService, call: Call, code: grpc.StatusCode, message: str
) -> None:
    client = traded.client
    before = snapshot(client)
    failure = failure_of(lambda: call(client))
    assert failure.code == code
    assert message in failure.details
    assert snapshot(client) == before


# --- a bad message in the middle of a stream -----------------------------------------------


def test_a_bad_message_mid_stream_keeps_the_messages_before_it(traded: RunningService) -> None:
    """Chosen behaviour (see the StreamMarketData comment in the proto): each
    message is accepted or refused whole. A bad message ends the call with
    INVALID_ARGUMENT whose details name the message's index and say that the
    messages before it were accepted and committed; those stay applied and in
    the audit log, while nothing of the bad message (not even its good events)
    nor of the messages after it is applied or journaled. The refusal itself is
    journaled as a RequestRefused record saying why, so the log explains the gap.
    """
    client = traded.client
    before = snapshot(client)
    ticks_before = len(journaled_ticks(client))
    good = [
        ticks("QQQ", [400.0 + i, 401.0 + i, 402.0 + i], start=LATER + timedelta(minutes=i))
        for i in range(3)
    ]
    # The 5th event of message 3 is bad; its first four are fine, and use a
    # symbol no other message has, so any leak of them would show.
    bad = ticks("IWM", [200.0, 201.0, 202.0, 203.0], start=LATER + timedelta(minutes=5))
    bad.append(market_event("IWM", -1.0, 10.0, LATER + timedelta(minutes=5, seconds=4)))
    after_bad = [ticks("DIA", [380.0, 381.0], start=LATER + timedelta(minutes=6))] * 2

    failure = failure_of(lambda: client.stream_market_data([*good, bad, *after_bad]))

    assert failure.code == INVALID
    details = failure.details
    assert "message 3 refused" in details
    assert "event 4 (IWM): price must be finite and > 0" in details
    assert "3 messages before it (9 events) were accepted" in details

    journaled = journaled_ticks(client)[ticks_before:]
    assert [symbol for symbol, _ in journaled] == ["QQQ"] * 9
    assert client.get_status().counters.market_events == before.counters.market_events + 9

    (refusal,) = client.query_audit(event_types=["RequestRefused"])
    assert refusal.seq > max(seq for _, seq in journaled)
    payload = json.loads(refusal.payload_json)
    assert payload["method"] == "StreamMarketData"
    assert payload["principal"] == "operator"
    assert "message 3 refused" in payload["reason"]
    assert "price must be finite and > 0" in payload["reason"]
    assert client.verify_audit().ok


def test_strategies_stay_registered_and_active_after_refusals(traded: RunningService) -> None:
    """Only the named strategy could ever change; an unknown name touches none."""
    client = traded.client
    failure_of(lambda: client.deactivate_strategy("MA_CROSSOVER"))
    (strategy,) = client.list_strategies().strategies
    assert (strategy.name, strategy.active) == (STRATEGY, True)
