"""The Alpaca adapter's pure parts: Alpaca's words in the domain's, amounts as Alpaca
takes them, and how a failed request ended. Errors are real alpaca-py `APIError`s,
built from `requests.Response` objects the way the SDK builds them."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderStatus as AlpacaOrderStatus
from alpaca.trading.enums import TradeEvent
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from brokers.alpaca.errors import classify
from brokers.alpaca.mapping import (
    STATUS_FROM_ALPACA,
    STATUS_FROM_EVENT,
    account_from,
    broker_order_from,
    position_from,
    report_from_update,
    status_from_alpaca,
    status_from_event,
)
from brokers.alpaca.orders import (
    LocalRefusal,
    float_exact,
    limit_price_for_alpaca,
    notional_for_alpaca,
    notional_order_request_for,
    order_request_for,
    quantity_for_alpaca,
)
from domain.broker import Outcome, ReportSource, RequestKind
from domain.orders import OrderStatus, OrderType, Side, SubmitOrder, TimeInForce

ACCEPTED = OrderStatus.ACCEPTED
PARTIAL = OrderStatus.PARTIALLY_FILLED

# --- fixtures in Alpaca's shapes ---------------------------------------------------------


def alpaca_order(**overrides: Any) -> dict[str, Any]:
    """An order as GET /v2/orders/{id} returns it (the docs' example, numbers as strings)."""
    order: dict[str, Any] = {
        "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
        "client_order_id": "dec-1-0",
        "created_at": "2024-03-05T14:30:00.123456789Z",
        "updated_at": "2024-03-05T14:30:01.5Z",
        "submitted_at": "2024-03-05T14:30:00.2Z",
        "filled_at": None,
        "expired_at": None,
        "canceled_at": None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
        "symbol": "AAPL",
        "asset_class": "us_equity",
        "notional": None,
        "qty": "1790.86",
        "filled_qty": "0",
        "filled_avg_price": None,
        "order_class": "",
        "order_type": "limit",
        "type": "limit",
        "side": "buy",
        "time_in_force": "day",
        "limit_price": "105.89",
        "stop_price": None,
        "status": "new",
        "extended_hours": False,
        "legs": None,
    }
    order.update(overrides)
    return order


def trade_update(event: str, order: dict[str, Any], **data: Any) -> dict[str, Any]:
    """A trade_updates message as TradingStream(raw_data=True) hands it to the handler."""
    return {
        "stream": "trade_updates",
        "data": {"event": event, "timestamp": "2024-03-05T14:30:02Z", "order": order, **data},
    }


def api_error(status: int, body: bytes, content_type: str = "application/json") -> APIError:
    """What alpaca-py raises for an HTTP error: `APIError(response.text, HTTPError)`."""
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = content_type
    response.url = "https://paper-api.alpaca.markets/v2/orders"
    try:
        response.raise_for_status()
    except requests.HTTPError as http_error:
        return APIError(response.text, http_error)  # type: ignore[no-untyped-call]
    raise AssertionError("not an error status")


def alpaca_body(code: int | None, message: str) -> bytes:
    body: dict[str, Any] = {} if code is None else {"code": code}
    body["message"] = message
    return json.dumps(body).encode()


def submit(**overrides: Any) -> SubmitOrder:
    fields: dict[str, Any] = {
        "client_order_id": "dec-1-0",
        "symbol": "AAPL",
        "side": Side.BUY,
        "quantity": Decimal("10"),
    }
    fields.update(overrides)
    return SubmitOrder(**fields)


# --- order statuses -----------------------------------------------------------------------

# Restated here on purpose: the test is the second statement of the documented table.
EXPECTED_STATUS: dict[str, tuple[OrderStatus, OrderStatus]] = {
    # alpaca status: (nothing filled, something filled)
    "new": (ACCEPTED, PARTIAL),
    "accepted": (ACCEPTED, PARTIAL),
    "pending_new": (ACCEPTED, PARTIAL),
    "accepted_for_bidding": (ACCEPTED, PARTIAL),
    "pending_review": (ACCEPTED, PARTIAL),
    "held": (ACCEPTED, PARTIAL),
    "calculated": (ACCEPTED, PARTIAL),
    "stopped": (ACCEPTED, PARTIAL),
    "suspended": (ACCEPTED, PARTIAL),
    "done_for_day": (ACCEPTED, PARTIAL),
    "pending_replace": (ACCEPTED, PARTIAL),
    "partially_filled": (PARTIAL, PARTIAL),
    "filled": (OrderStatus.FILLED, OrderStatus.FILLED),
    "pending_cancel": (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_CANCEL),
    "canceled": (OrderStatus.CANCELLED, OrderStatus.CANCELLED),
    "expired": (OrderStatus.EXPIRED, OrderStatus.EXPIRED),
    "replaced": (OrderStatus.CANCELLED, OrderStatus.CANCELLED),
    "rejected": (OrderStatus.REJECTED, OrderStatus.REJECTED),
}


def test_every_alpaca_py_order_status_is_in_the_table() -> None:
    sdk = {s.value for s in AlpacaOrderStatus}
    assert len(sdk) == 18
    assert set(STATUS_FROM_ALPACA) == sdk
    assert set(EXPECTED_STATUS) == sdk


@pytest.mark.parametrize("status", [s.value for s in AlpacaOrderStatus])
def test_each_order_status_maps_as_documented(status: str) -> None:
    unfilled, filled = EXPECTED_STATUS[status]
    assert status_from_alpaca(status, Decimal(0)) is unfilled
    assert status_from_alpaca(status, Decimal("0.5")) is filled
    order = broker_order_from(alpaca_order(status=status, filled_qty="0"))
    assert order.status is unfilled
    assert order.broker_status == status


def test_an_unknown_status_keeps_the_order_working_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert status_from_alpaca("quantum_superposition", Decimal(0)) is ACCEPTED
        assert status_from_alpaca("quantum_superposition", Decimal(3)) is PARTIAL
    assert "quantum_superposition" in caplog.text


# --- trade events -------------------------------------------------------------------------

# Every event alpaca.md lists: the SDK's TradeEvent enum, and those it delivers as plain str.
PLAIN_EVENTS = [
    "done_for_day",
    "calculated",
    "stopped",
    "suspended",
    "order_replace_rejected",
    "order_cancel_rejected",
]
ALL_EVENTS = sorted({e.value for e in TradeEvent} | set(PLAIN_EVENTS))

DECIDING_EVENTS: dict[str, OrderStatus] = {
    "fill": OrderStatus.FILLED,
    "partial_fill": PARTIAL,
    "canceled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "replaced": OrderStatus.CANCELLED,
    "pending_cancel": OrderStatus.PENDING_CANCEL,
}
INFORMATIONAL_EVENTS = [
    "new",
    "accepted",
    "pending_new",
    "restated",
    "done_for_day",
    "calculated",
    "stopped",
    "suspended",
    "pending_replace",
    "order_replace_rejected",
    "order_cancel_rejected",
]


def test_every_trade_event_is_in_the_table() -> None:
    assert {"accepted", "restated", "pending_new", "new", "fill"} <= set(ALL_EVENTS)
    assert set(STATUS_FROM_EVENT) == set(ALL_EVENTS)
    assert set(DECIDING_EVENTS) | set(INFORMATIONAL_EVENTS) == set(ALL_EVENTS)
    assert not set(DECIDING_EVENTS) & set(INFORMATIONAL_EVENTS)


@pytest.mark.parametrize("event", sorted(DECIDING_EVENTS))
def test_an_event_that_says_what_happened_decides_the_status(event: str) -> None:
    for order_status in (ACCEPTED, PARTIAL, OrderStatus.PENDING_CANCEL):
        assert status_from_event(event, order_status) is DECIDING_EVENTS[event]


@pytest.mark.parametrize("event", INFORMATIONAL_EVENTS)
def test_an_informational_event_leaves_the_status_to_the_order(event: str) -> None:
    for order_status in (ACCEPTED, PARTIAL, OrderStatus.PENDING_CANCEL, OrderStatus.FILLED):
        assert status_from_event(event, order_status) is order_status


@pytest.mark.parametrize("event", ALL_EVENTS)
def test_each_event_becomes_a_stream_report(event: str) -> None:
    status = {"fill": "filled", "partial_fill": "partially_filled"}.get(event, "new")
    filled = {"fill": "1790.86", "partial_fill": "1"}.get(event, "0")
    extra = (
        {"execution_id": "e-1", "qty": filled, "price": "105.8988475", "position_qty": filled}
        if event in ("fill", "partial_fill")
        else {}
    )
    report = report_from_update(
        trade_update(event, alpaca_order(status=status, filled_qty=filled), **extra)
    )
    assert report is not None
    assert report.source is ReportSource.STREAM
    assert report.event == event
    assert (report.execution is not None) == (event in ("fill", "partial_fill"))
    expected = DECIDING_EVENTS.get(event) or EXPECTED_STATUS[status][0]
    assert report.order.status is expected


def test_order_cancel_rejected_puts_a_pending_cancel_back_to_working() -> None:
    report = report_from_update(
        trade_update(
            "order_cancel_rejected", alpaca_order(status="partially_filled", filled_qty="3")
        )
    )
    assert report is not None and report.order.status is PARTIAL


def test_an_unknown_event_keeps_the_orders_own_status_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        report = report_from_update(trade_update("teleported", alpaca_order(status="new")))
    assert report is not None
    assert report.order.status is ACCEPTED
    assert report.event == "teleported"
    assert "teleported" in caplog.text


# --- parsing: Decimals from strings -----------------------------------------------------


def test_an_order_is_read_with_exact_decimals_from_its_strings() -> None:
    order = broker_order_from(
        alpaca_order(
            status="partially_filled",
            qty="1790.86",
            filled_qty="0.123456789",
            filled_avg_price="105.8988475",
        )
    )
    assert order.client_order_id == "dec-1-0"
    assert order.broker_order_id == "61e69015-8549-4bfd-b9c3-01e75843f47d"
    assert order.symbol == "AAPL"
    assert order.side is Side.BUY
    assert order.order_type is OrderType.LIMIT
    assert order.time_in_force is TimeInForce.DAY
    assert order.quantity == Decimal("1790.86")
    assert order.filled_quantity == Decimal("0.123456789")
    assert str(order.average_fill_price) == "105.8988475"
    assert order.limit_price == Decimal("105.89")
    assert order.status is PARTIAL
    assert order.updated_at is not None and order.updated_at.microsecond == 500000


def test_a_null_average_price_and_market_type_read_as_zero_and_no_limit() -> None:
    order = broker_order_from(
        alpaca_order(type="market", order_type="market", limit_price=None, side="sell")
    )
    assert order.average_fill_price == 0
    assert order.limit_price is None
    assert order.order_type is OrderType.MARKET
    assert order.side is Side.SELL


@pytest.mark.parametrize(
    ("alpaca", "domain"),
    [
        ("day", "DAY"),
        ("gtc", "GTC"),
        ("ioc", "IOC"),
        ("fok", "FOK"),
        ("opg", "OPG"),
        ("cls", "CLS"),
    ],
)
def test_time_in_force_is_read_both_ways(alpaca: str, domain: str) -> None:
    assert broker_order_from(alpaca_order(time_in_force=alpaca)).time_in_force.value == domain
    request = order_request_for(submit(time_in_force=TimeInForce(domain)))
    assert request.time_in_force.value == alpaca


def test_external_order_types_are_named_by_what_they_execute_as() -> None:
    stop = broker_order_from(alpaca_order(type="stop", limit_price=None, stop_price="99"))
    stop_limit = broker_order_from(alpaca_order(type="stop_limit", stop_price="99"))
    assert stop.order_type is OrderType.MARKET
    assert stop_limit.order_type is OrderType.LIMIT


def test_a_notional_order_without_qty_has_its_filled_quantity_as_size() -> None:
    order = broker_order_from(alpaca_order(qty=None, notional="500", filled_qty="2.5"))
    assert order.quantity == Decimal("2.5")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("canceled", "canceled at Alpaca"),
        ("expired", "expired at Alpaca (time in force day)"),
        ("rejected", "rejected by Alpaca"),
    ],
)
def test_ended_orders_carry_a_reason(status: str, reason: str) -> None:
    assert broker_order_from(alpaca_order(status=status)).reason == reason


def test_a_replaced_order_is_cancelled_naming_its_replacement() -> None:
    order = broker_order_from(
        alpaca_order(status="replaced", replaced_by="7b7c4a4a-0000-4000-8000-000000000001")
    )
    assert order.status is OrderStatus.CANCELLED
    assert order.reason == "replaced by 7b7c4a4a-0000-4000-8000-000000000001"


def test_the_events_own_reason_is_kept() -> None:
    report = report_from_update(
        trade_update("rejected", alpaca_order(status="rejected"), reason="insufficient funds")
    )
    assert report is not None
    assert report.order.status is OrderStatus.REJECTED
    assert report.order.reason == "insufficient funds"


def test_a_fill_carries_its_execution_as_exact_decimals() -> None:
    report = report_from_update(
        trade_update(
            "partial_fill",
            alpaca_order(status="partially_filled", filled_qty="1", filled_avg_price="105.1"),
            execution_id="0b9e9d4c-5b52-4d2a-a6b0-8e0c0d1f2a3b",
            qty="0.000000001",
            price="105.8988475",
            position_qty="1",
        )
    )
    assert report is not None and report.execution is not None
    assert report.execution.execution_id == "0b9e9d4c-5b52-4d2a-a6b0-8e0c0d1f2a3b"
    assert report.execution.quantity.as_tuple() == Decimal("0.000000001").as_tuple()
    assert str(report.execution.price) == "105.8988475"
    assert report.order.filled_quantity == 1


def test_the_data_alone_reads_like_the_whole_message() -> None:
    message = trade_update("new", alpaca_order())
    assert report_from_update(message) == report_from_update(message["data"])


def test_an_order_placed_outside_the_service_is_reported_the_same_way() -> None:
    report = report_from_update(trade_update("new", alpaca_order(client_order_id="web-12ab")))
    assert report is not None and report.client_order_id == "web-12ab"


@pytest.mark.parametrize(
    "message",
    [
        {"stream": "trade_updates", "data": None},  # Alpaca-API#110
        {"stream": "trade_updates", "data": {"event": "new"}},
        {"stream": "trade_updates", "data": {"event": "new", "order": "nope"}},
        trade_update("new", alpaca_order(side="sideways")),
        trade_update("new", alpaca_order(qty="lots")),
        trade_update("new", alpaca_order(qty="NaN")),
        trade_update("new", alpaca_order(filled_qty="Infinity")),
        trade_update("new", alpaca_order(client_order_id=None)),
        trade_update("fill", alpaca_order(status="filled"), qty="1", price="2"),  # no id
        trade_update("fill", alpaca_order(status="filled"), execution_id="e", qty="1"),
        trade_update("fill", alpaca_order(), execution_id="e", qty=True, price="2"),
    ],
)
def test_a_malformed_update_is_dropped_and_logged(
    message: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert report_from_update(message) is None
    assert "malformed" in caplog.text


def test_the_account_is_read_as_decimals() -> None:
    account = account_from(
        {
            "account_number": "PA1",
            "cash": "100000.123456789",
            "equity": "100250.5",
            "buying_power": "200000",
            "currency": "USD",
        }
    )
    assert str(account.cash) == "100000.123456789"
    assert account.equity == Decimal("100250.5")
    assert account.buying_power == Decimal("200000")


def test_positions_are_read_as_decimals_and_shorts_are_negative() -> None:
    long = position_from(
        {"symbol": "AAPL", "qty": "3.5", "avg_entry_price": "187.25", "current_price": "190.1"}
    )
    short = position_from(
        {
            "symbol": "TSLA",
            "qty": "5",
            "side": "short",
            "avg_entry_price": "200",
            "current_price": None,
        }
    )
    already_negative = position_from(
        {"symbol": "TSLA", "qty": "-5", "side": "short", "avg_entry_price": "200"}
    )
    assert (long.quantity, long.average_price, long.market_price) == (
        Decimal("3.5"),
        Decimal("187.25"),
        Decimal("190.1"),
    )
    assert short.quantity == Decimal(-5) and short.market_price == Decimal(200)
    assert already_negative.quantity == Decimal(-5)


# --- amounts as Alpaca takes them ------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "sent"),
    [
        ("10", "10"),
        ("0.123456789", "0.123456789"),
        ("0.1234567899", "0.123456789"),  # down, never up
        ("1.9999999999", "1.999999999"),
    ],
)
def test_quantities_round_down_to_nine_decimals(asked: str, sent: str) -> None:
    assert quantity_for_alpaca(Decimal(asked)) == Decimal(sent)


@pytest.mark.parametrize(
    ("price", "side", "sent"),
    [
        ("187.255", Side.BUY, "187.25"),  # a buy never pays more than asked
        ("187.255", Side.SELL, "187.26"),  # a sell never takes less than asked
        ("187.25", Side.SELL, "187.25"),
        ("1", Side.BUY, "1.00"),
        ("0.123456", Side.BUY, "0.1234"),
        ("0.123456", Side.SELL, "0.1235"),
        ("0.99999", Side.SELL, "1.0000"),
    ],
)
def test_limit_prices_round_to_the_tick_in_the_askers_favour(
    price: str, side: Side, sent: str
) -> None:
    assert limit_price_for_alpaca(Decimal(price), side) == Decimal(sent)


def test_notionals_round_down_to_nine_decimals() -> None:
    assert notional_for_alpaca(Decimal("100.1234567899")) == Decimal("100.123456789")
    request = notional_order_request_for("n-1", "AAPL", Side.BUY, Decimal("250.5"))
    assert request.notional == 250.5 and request.qty is None
    with pytest.raises(LocalRefusal):
        notional_order_request_for("n-1", "AAPL", Side.BUY, Decimal("0.0000000001"))


def test_a_market_order_request_carries_exactly_the_decimal_asked() -> None:
    request = order_request_for(submit(quantity=Decimal("0.123456789")))
    assert isinstance(request, MarketOrderRequest)
    fields = request.to_request_fields()
    # What requests will post, read back as Alpaca's decimal parser would.
    posted = json.loads(json.dumps(fields), parse_float=Decimal)
    assert posted["qty"] == Decimal("0.123456789")
    assert posted["client_order_id"] == "dec-1-0"
    assert posted["side"] == "buy" and posted["type"] == "market"
    assert posted["time_in_force"] == "day"


def test_a_limit_order_request_carries_the_rounded_price() -> None:
    request = order_request_for(
        submit(order_type=OrderType.LIMIT, limit_price=Decimal("187.259"), side=Side.SELL)
    )
    assert isinstance(request, LimitOrderRequest)
    posted = json.loads(json.dumps(request.to_request_fields()), parse_float=Decimal)
    assert posted["limit_price"] == Decimal("187.26")
    assert posted["type"] == "limit" and posted["side"] == "sell"


def test_float_exactness_is_what_a_binary_float_keeps() -> None:
    assert float_exact(Decimal("0.123456789"))
    assert float_exact(Decimal("123456.123456789"))
    assert not float_exact(Decimal("12345678.123456789"))  # 17 significant digits


@pytest.mark.parametrize(
    ("order", "code"),
    [
        (submit(quantity=Decimal("12345678.123456789")), "not-float-exact"),
        (submit(quantity=Decimal("0.5"), time_in_force=TimeInForce.GTC), "fractional-needs-day"),
        (submit(client_order_id="x" * 49), "client-order-id-too-long"),
        (submit(client_order_id=""), "client-order-id-missing"),
        (submit(quantity=Decimal("0")), "quantity-not-positive"),
        (submit(quantity=Decimal("-1")), "quantity-not-positive"),
        (submit(quantity=Decimal("NaN")), "quantity-not-positive"),
        (submit(quantity=Decimal("0.0000000001")), "quantity-below-step"),
        (submit(order_type=OrderType.LIMIT), "limit-price-missing"),
        (submit(order_type=OrderType.LIMIT, limit_price=Decimal("0")), "limit-price-not-positive"),
        (
            submit(order_type=OrderType.LIMIT, limit_price=Decimal("0.00001")),
            "limit-price-below-step",
        ),
        (submit(limit_price=Decimal("10")), "limit-price-on-market"),
    ],
)
def test_orders_alpaca_could_not_take_as_asked_are_refused_locally(
    order: SubmitOrder, code: str
) -> None:
    with pytest.raises(LocalRefusal) as refused:
        order_request_for(order)
    assert refused.value.code == code
    assert refused.value.message


def test_the_refusal_of_an_inexact_quantity_says_why() -> None:
    with pytest.raises(LocalRefusal, match="more significant digits than a float carries exactly"):
        order_request_for(submit(quantity=Decimal("12345678.123456789")))


def test_a_client_order_id_of_48_characters_and_a_fractional_day_order_are_fine() -> None:
    request = order_request_for(submit(client_order_id="x" * 48, quantity=Decimal("0.5")))
    assert request.client_order_id == "x" * 48
    assert request.qty == 0.5


# --- how a failed request ended ------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(RequestKind))
@pytest.mark.parametrize(
    ("status", "code", "message", "expected_code"),
    [
        (403, 40310000, "insufficient buying power", "40310000"),
        (403, 40310100, "trade denied due to pattern day trading protection", "40310100"),
        (400, 40010000, "request body format is invalid", "40010000"),
        (422, 42210000, "invalid limit_price 290.123. sub-penny increment", "42210000"),
        (401, None, "unauthorized.", "http-401"),
    ],
)
def test_a_definite_no_is_refused_with_alpacas_code_and_message(
    kind: RequestKind, status: int, code: int | None, message: str, expected_code: str
) -> None:
    verdict = classify(api_error(status, alpaca_body(code, message)), kind)
    assert verdict.outcome is Outcome.REFUSED
    assert verdict.code == expected_code
    assert verdict.message == message
    assert verdict.answered


def test_the_401_body_has_no_code_and_the_sdk_would_raise_reading_it() -> None:
    error = api_error(401, alpaca_body(None, "unauthorized."))
    with pytest.raises(KeyError):
        _ = error.code
    assert classify(error, RequestKind.SUBMIT).code == "http-401"


def test_must_be_unique_on_our_own_submit_is_unknown_the_order_may_exist() -> None:
    error = api_error(422, alpaca_body(40010001, "client_order_id must be unique"))
    verdict = classify(error, RequestKind.SUBMIT)
    assert verdict.outcome is Outcome.UNKNOWN
    assert verdict.code == "40010001"
    other = classify(
        api_error(422, alpaca_body(40010001, "qty must be integer")), RequestKind.SUBMIT
    )
    assert other.outcome is Outcome.REFUSED


def test_cancelling_a_filled_order_is_refused() -> None:
    error = api_error(422, alpaca_body(42210000, 'order is already in "filled" state'))
    verdict = classify(error, RequestKind.CANCEL)
    assert (verdict.outcome, verdict.code) == (Outcome.REFUSED, "42210000")


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        (RequestKind.SUBMIT, Outcome.REFUSED),
        (RequestKind.CANCEL, Outcome.REFUSED),
        (RequestKind.LOOKUP, Outcome.NOT_FOUND),
    ],
)
def test_a_404_is_refused_or_not_found(kind: RequestKind, outcome: Outcome) -> None:
    verdict = classify(api_error(404, alpaca_body(40410000, "order not found")), kind)
    assert (verdict.outcome, verdict.code) == (outcome, "40410000")


@pytest.mark.parametrize("kind", list(RequestKind))
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_rate_limits_and_server_errors_are_unknown(kind: RequestKind, status: int) -> None:
    verdict = classify(api_error(status, alpaca_body(50010000, "internal server error")), kind)
    assert (verdict.outcome, verdict.code) == (Outcome.UNKNOWN, f"http-{status}")
    assert not verdict.answered


def test_a_gateways_html_is_unknown_and_never_parsed_as_json() -> None:
    error = api_error(504, b"<html><body>\n  gateway timeout\n</body></html>", "text/html")
    with pytest.raises(ValueError):
        _ = error.code  # what a classifier that read .code first would hit
    verdict = classify(error, RequestKind.SUBMIT)
    assert (verdict.outcome, verdict.code) == (Outcome.UNKNOWN, "http-504")
    assert verdict.message == "<html><body> gateway timeout </body></html>"


def test_an_unusual_status_proves_nothing() -> None:
    verdict = classify(api_error(409, alpaca_body(40910000, "conflict")), RequestKind.SUBMIT)
    assert verdict.outcome is Outcome.UNKNOWN


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (requests.ReadTimeout("read timed out"), "timeout"),
        (requests.ConnectTimeout("connect timed out"), "timeout"),
        (requests.ConnectionError("Connection aborted."), "connection"),
        (requests.exceptions.ChunkedEncodingError("broken"), "transport"),
        (RuntimeError("surprise"), "error"),
    ],
)
def test_transport_failures_are_unknown(error: Exception, code: str) -> None:
    verdict = classify(error, RequestKind.SUBMIT)
    assert (verdict.outcome, verdict.code) == (Outcome.UNKNOWN, code)
    assert not verdict.answered
