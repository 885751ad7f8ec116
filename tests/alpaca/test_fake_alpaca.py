"""The fake Alpaca, driven by the real alpaca-py 0.44 clients and nothing else: what it answers
must be what the SDK sends, parses and does on failure, or the adapter tests built on it
prove nothing. Every wait is bounded; the 3 s SDK retry sleeps are limited to two tests."""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order, Position, TradeAccount, TradeUpdate
from alpaca.trading.requests import (
    CancelOrderResponse,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
)
from alpaca.trading.stream import TradingStream

from tests.fakes.alpaca_server import (
    FakeAlpaca,
    after_accept,
    drop,
    hang,
    rate_limited,
    refuse,
    server_error,
)


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as running:
        running.set_price("AAPL", "187.25")
        yield running


@pytest.fixture
def client(fake: FakeAlpaca) -> TradingClient:
    return TradingClient(fake.key_id, fake.secret_key, url_override=fake.base_url)


@pytest.fixture
def raw_client(fake: FakeAlpaca) -> TradingClient:
    return TradingClient(fake.key_id, fake.secret_key, raw_data=True, url_override=fake.base_url)


@contextmanager
def listening_stream(fake: FakeAlpaca, *, raw_data: bool = True) -> Iterator[list[Any]]:
    """Run an alpaca-py TradingStream in a thread until the block ends; yields what its
    handler received (raw messages, or TradeUpdate models when raw_data is False)."""
    received: list[Any] = []
    stream = TradingStream(
        fake.key_id, fake.secret_key, raw_data=raw_data, url_override=fake.stream_url
    )

    async def on_update(update: Any) -> None:
        received.append(update)

    stream.subscribe_trade_updates(on_update)
    before = fake.stream_authentications
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        fake.wait_for(lambda: fake.stream_authentications > before)
        yield received
    finally:
        stop(fake, stream, thread)


def stop(fake: FakeAlpaca, stream: TradingStream, thread: threading.Thread) -> None:
    # The SDK notices stop() only between receives (it polls every 5 s): a drop ends it now.
    if stream._loop is not None:
        stream.stop()
    fake.drop_streams()
    thread.join(timeout=5)
    assert not thread.is_alive()


def events(received: list[Any]) -> list[str]:
    return [message["data"]["event"] for message in received]


def wait_for_events(fake: FakeAlpaca, received: list[Any], count: int) -> list[str]:
    fake.wait_for(lambda: len(received) >= count)
    return events(received)


def market_buy(client_order_id: str, qty: float = 10) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="AAPL",
        qty=qty,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        client_order_id=client_order_id,
    )


def limit_buy(client_order_id: str, qty: float = 4, price: float = 150.0) -> LimitOrderRequest:
    return LimitOrderRequest(
        symbol="AAPL",
        qty=qty,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.GTC,
        limit_price=price,
        client_order_id=client_order_id,
    )


M = TypeVar("M")


def typed(kind: type[M], value: object) -> M:
    """alpaca-py returns `Model | RawData` unions: narrow one to what this client gives."""
    assert isinstance(value, kind), f"expected {kind.__name__}, got {value!r}"
    return value


def typed_list(kind: type[M], value: object) -> list[M]:
    assert isinstance(value, list), f"expected a list, got {value!r}"
    return [typed(kind, item) for item in value]


def api_error(call: Callable[[], object]) -> APIError:
    with pytest.raises(APIError) as caught:
        call()
    return caught.value


# --- the happy path, exactly as the SDK sees it ---


def test_a_market_order_is_accepted_then_new_and_fill_arrive_and_rest_shows_exact_strings(
    fake: FakeAlpaca, client: TradingClient, raw_client: TradingClient
) -> None:
    with (
        listening_stream(fake) as raw,
        listening_stream(fake, raw_data=False) as parsed,
    ):
        accepted = typed(dict, raw_client.submit_order(market_buy("buy-1")))
        assert accepted["status"] == "accepted"
        assert accepted["filled_qty"] == "0" and accepted["qty"] == "10"
        assert wait_for_events(fake, raw, 2) == ["new", "fill"]
        fake.wait_for(lambda: len(parsed) >= 2)

    fill = raw[1]["data"]
    assert fill["price"] == "187.25" and fill["qty"] == "10" and fill["position_qty"] == "10"
    assert uuid.UUID(fill["execution_id"])
    assert fill["order"]["status"] == "filled" and fill["timestamp"].endswith("Z")
    # alpaca-py parses every message: events are plain strings, fill numbers are floats.
    model = parsed[1]
    assert isinstance(model, TradeUpdate) and model.event == "fill"
    assert model.order.client_order_id == "buy-1" and model.order.filled_qty == "10"
    assert model.execution_id == uuid.UUID(fill["execution_id"]) and model.qty == 10.0

    order = typed(Order, client.get_order_by_client_id("buy-1"))
    assert order.status == OrderStatus.FILLED
    assert order.filled_qty == "10" and order.filled_avg_price == "187.25"
    assert Decimal(order.filled_qty) * Decimal(order.filled_avg_price) == Decimal("1872.50")
    assert typed(Order, client.get_order_by_id(order.id)).client_order_id == "buy-1"
    assert fake.orders_for("buy-1") == [fake.order("buy-1")]

    account = typed(TradeAccount, client.get_account())
    assert account.account_number == fake.account_number and account.status == "ACTIVE"
    assert account.cash == "98127.5" and account.equity == "100000"
    (position,) = typed_list(Position, client.get_all_positions())
    assert (position.symbol, position.qty, position.avg_entry_price) == ("AAPL", "10", "187.25")
    assert typed(Position, client.get_open_position("AAPL")).market_value == "1872.5"
    sent = fake.submissions()[0]
    assert sent.headers["apca-api-key-id"] == fake.key_id
    assert sent.body == {
        "symbol": "AAPL",
        "qty": 10.0,
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": "buy-1",
    }


def test_partial_fills_then_fill_carry_each_execution_and_the_exact_cumulative_average(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    fake.auto_fill = False
    with listening_stream(fake) as received:
        client.submit_order(limit_buy("part-1", qty=4, price=190.0))
        executions = [("2", "10.00"), ("1", "10.01"), ("1", "10.05")]
        ids = [fake.fill("part-1", qty, price) for qty, price in executions]
        assert wait_for_events(fake, received, 4) == ["new", "partial_fill", "partial_fill", "fill"]

    assert [m["data"]["execution_id"] for m in received[1:]] == ids
    assert [(m["data"]["qty"], m["data"]["price"]) for m in received[1:]] == [
        ("2", "10"),
        ("1", "10.01"),
        ("1", "10.05"),
    ]
    assert [m["data"]["order"]["filled_qty"] for m in received[1:]] == ["2", "3", "4"]
    assert [m["data"]["position_qty"] for m in received[1:]] == ["2", "3", "4"]
    exact = sum(Decimal(q) * Decimal(p) for q, p in executions) / Decimal(4)
    order = typed(Order, client.get_order_by_client_id("part-1"))
    assert order.status == OrderStatus.FILLED and order.filled_qty == "4"
    assert Decimal(str(order.filled_avg_price)) == exact == Decimal("10.015")
    # After two executions the average does not terminate: Decimal's 28 digits, unrounded.
    assert received[2]["data"]["order"]["filled_avg_price"] == str(Decimal("30.01") / 3)


def test_an_order_that_does_not_fill_rests_and_is_listed_open(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    client.submit_order(limit_buy("rest-1", price=150.0))  # below 187.25: not marketable
    assert fake.order("rest-1")["status"] == "new"
    (listed,) = typed_list(Order, client.get_orders(GetOrdersRequest(status="open")))
    assert listed.client_order_id == "rest-1" and listed.limit_price == "150"
    assert client.get_orders(GetOrdersRequest(status="closed")) == []
    account = typed(TradeAccount, client.get_account())
    assert account.buying_power == str(Decimal("100000") - Decimal("600"))


# --- refusals: nothing is created ---


def test_a_reused_client_order_id_is_refused_422_even_after_a_cancel(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    client.submit_order(limit_buy("dup-1"))
    error = api_error(lambda: client.submit_order(limit_buy("dup-1")))
    assert (error.status_code, error.code) == (422, 40010001)
    assert error.message == "client_order_id must be unique"
    fake.cancel("dup-1")
    error = api_error(lambda: client.submit_order(limit_buy("dup-1")))
    assert (error.status_code, error.code) == (422, 40010001)
    assert len(fake.orders()) == 1 and len(fake.submissions()) == 3


def test_a_refusal_creates_nothing_and_carries_status_and_code(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    fake.fail_next("POST /v2/orders", refuse(403, 40310000, "insufficient buying power"))
    error = api_error(lambda: client.submit_order(market_buy("bp-1")))
    assert (error.status_code, error.code, error.message) == (
        403,
        40310000,
        "insufficient buying power",
    )
    assert fake.orders() == [] and len(fake.submissions()) == 1
    client.submit_order(market_buy("bp-1"))  # the id was never used
    assert fake.order("bp-1")["status"] == "filled"


def test_the_fake_itself_refuses_what_alpaca_refuses(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    error = api_error(lambda: client.submit_order(market_buy("big-1", qty=1000)))
    assert (error.status_code, error.code) == (403, 40310000)
    assert "buying_power" in error.response.json()
    error = api_error(lambda: client.submit_order(limit_buy("penny-1", price=150.123)))
    assert (error.status_code, error.code) == (422, 42210000)
    assert error.message.startswith("invalid limit_price 150.123. sub-penny increment")
    fractional = LimitOrderRequest(
        symbol="AAPL", qty=0.5, side="buy", time_in_force="gtc", limit_price=150.0
    )
    assert api_error(lambda: client.submit_order(fractional)).status_code == 422
    too_long = "x" * 49
    assert api_error(lambda: client.submit_order(market_buy(too_long))).code == 40010001
    # What the SDK's request models would not let through, sent by its own RESTClient:
    both = {"symbol": "AAPL", "qty": 1, "notional": 5, "side": "buy", "type": "market"}
    error = api_error(lambda: client.post("/orders", {**both, "time_in_force": "day"}))
    assert (error.status_code, error.code) == (422, 40010001)
    assert fake.orders() == []


def test_wrong_keys_get_401_without_a_code(fake: FakeAlpaca) -> None:
    stranger = TradingClient("PKWRONG", "nope", url_override=fake.base_url)
    error = api_error(stranger.get_account)
    assert error.status_code == 401 and error.message == "unauthorized."
    with pytest.raises(KeyError):
        _ = error.code


def test_server_error_creates_nothing_and_is_not_retried(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    fake.fail_next("POST /v2/orders", server_error(500))
    error = api_error(lambda: client.submit_order(market_buy("e500-1")))
    assert error.status_code == 500
    assert fake.orders() == [] and len(fake.submissions()) == 1


def test_down_answers_503_to_everything(fake: FakeAlpaca, client: TradingClient) -> None:
    fake.set_down(True)
    error = api_error(client.get_account)
    assert (error.status_code, error.code) == (503, 50300000)
    fake.set_down(False)
    assert typed(TradeAccount, client.get_account()).cash == "100000"


# --- ambiguous failures: the order exists although the client saw an error ---


def test_a_504_after_accept_makes_the_sdk_repost_and_raise_422_over_one_order(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    fake.fail_next("POST /v2/orders", after_accept(504))
    error = api_error(lambda: client.submit_order(market_buy("amb-1")))  # sleeps 3 s, re-POSTs
    assert (error.status_code, error.code) == (422, 40010001)
    assert len(fake.submissions()) == 2
    assert len(fake.orders_for("amb-1")) == 1
    assert fake.order("amb-1")["status"] == "filled"


def test_a_rate_limited_submit_is_retried_by_the_sdk_and_succeeds(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    fake.fail_next("POST /v2/orders", rate_limited())
    order = typed(Order, client.submit_order(market_buy("rl-1")))  # sleeps 3 s
    assert order.status == OrderStatus.ACCEPTED
    assert len(fake.submissions()) == 2 and len(fake.orders()) == 1


def test_a_dropped_connection_raises_connection_error_over_one_order(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    fake.fail_next("POST /v2/orders", drop())
    with pytest.raises(requests.exceptions.ConnectionError):
        client.submit_order(market_buy("drop-1"))
    assert len(fake.orders_for("drop-1")) == 1
    assert typed(Order, client.get_order_by_client_id("drop-1")).status == OrderStatus.FILLED


def test_a_hung_answer_times_out_over_one_order(fake: FakeAlpaca, client: TradingClient) -> None:
    # alpaca-py has no timeout; an adapter gives its session one, as here.
    session = client._session
    session.request = functools.partial(session.request, timeout=0.3)  # type: ignore[method-assign]
    fake.fail_next("POST /v2/orders", hang(5))
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.submit_order(market_buy("hang-1"))
    assert len(fake.orders_for("hang-1")) == 1


def test_latency_delays_the_answer_of_one_route(fake: FakeAlpaca, client: TradingClient) -> None:
    fake.set_latency(0.3, "GET /v2/account")
    started = datetime.now(UTC)
    client.get_account()
    assert datetime.now(UTC) - started >= timedelta(seconds=0.3)
    started = datetime.now(UTC)
    client.get_clock()
    assert datetime.now(UTC) - started < timedelta(seconds=0.3)


def test_faults_are_consumed_one_request_each_in_order(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    fake.fail_next(
        "GET /v2/orders:by_client_order_id",
        server_error(502),
        refuse(404, 40410000, "order not found"),
    )
    client.submit_order(market_buy("f-1"))
    assert api_error(lambda: client.get_order_by_client_id("f-1")).status_code == 502
    assert api_error(lambda: client.get_order_by_client_id("f-1")).code == 40410000
    assert typed(Order, client.get_order_by_client_id("f-1")).client_order_id == "f-1"
    with pytest.raises(ValueError):
        fake.fail_next("GET /v2/nowhere", server_error())


# --- lookups ---


def test_unknown_orders_and_positions_are_404(client: TradingClient) -> None:
    error = api_error(lambda: client.get_order_by_client_id("never"))
    assert (error.status_code, error.code, error.message) == (404, 40410000, "order not found")
    assert api_error(lambda: client.get_order_by_id(uuid.uuid4())).status_code == 404
    error = api_error(lambda: client.get_open_position("MSFT"))
    assert (error.status_code, error.message) == (404, "position does not exist")


def test_order_listing_filters_like_alpaca(fake: FakeAlpaca, client: TradingClient) -> None:
    fake.set_price("MSFT", "400")
    for n in range(3):
        client.submit_order(market_buy(f"all-{n}", qty=1))
    client.submit_order(limit_buy("open-0"))
    msft = MarketOrderRequest(
        symbol="MSFT", qty=1, side="buy", time_in_force="day", client_order_id="msft-0"
    )
    client.submit_order(msft)

    def ids(**filters: Any) -> list[str]:
        listed = typed_list(Order, client.get_orders(GetOrdersRequest(**filters)))
        return [o.client_order_id for o in listed]

    assert ids() == ["open-0"]
    assert ids(status="closed") == ["msft-0", "all-2", "all-1", "all-0"]
    assert ids(status="all", direction="asc", limit=2) == ["all-0", "all-1"]
    after = typed(Order, client.get_order_by_client_id("all-1")).submitted_at
    assert ids(status="all", direction="asc", after=after) == ["all-2", "open-0", "msft-0"]
    assert ids(status="all", symbols=["MSFT"]) == ["msft-0"]
    assert api_error(lambda: ids(limit=501)).status_code == 422


# --- the lifecycle the broker drives ---


def test_a_cancel_request_answers_204_then_pending_cancel_then_canceled(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    with listening_stream(fake) as received:
        order = typed(Order, client.submit_order(limit_buy("can-1")))
        client.cancel_order_by_id(order.id)  # 204: the SDK returns None
        assert wait_for_events(fake, received, 3) == ["new", "pending_cancel", "canceled"]
    assert [m["data"]["order"]["status"] for m in received] == ["new", "pending_cancel", "canceled"]
    canceled = typed(Order, client.get_order_by_client_id("can-1"))
    assert canceled.status == OrderStatus.CANCELED and canceled.canceled_at is not None
    error = api_error(lambda: client.cancel_order_by_id(order.id))
    assert (error.status_code, error.code) == (422, 42210000)
    assert error.message == 'order is already in "canceled" state'


def test_without_auto_cancel_a_fill_can_win_the_race_with_a_cancel(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    fake.auto_cancel = False
    order = typed(Order, client.submit_order(limit_buy("race-1")))
    client.cancel_order_by_id(order.id)
    assert fake.order("race-1")["status"] == "pending_cancel"
    fake.fill("race-1", "4", "149.5")
    assert typed(Order, client.get_order_by_client_id("race-1")).status == OrderStatus.FILLED
    assert [u["event"] for u in fake.trade_updates()] == ["new", "pending_cancel", "fill"]


def test_cancel_all_answers_207_per_order(fake: FakeAlpaca, client: TradingClient) -> None:
    client.submit_order(limit_buy("ca-1"))
    client.submit_order(limit_buy("ca-2"))
    answers = typed_list(CancelOrderResponse, client.cancel_orders())
    assert sorted(a.status for a in answers) == [200, 200]
    fake.wait_for(lambda: all(o["status"] == "canceled" for o in fake.orders()))


def test_expire_reject_and_any_event_reach_the_sdk_and_parse(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    fake.auto_fill = False
    for cid in ("x-1", "x-2", "x-3"):
        client.submit_order(limit_buy(cid))
    with listening_stream(fake, raw_data=False) as parsed:
        fake.expire("x-1")
        fake.reject("x-2", reason="halted")
        fake.emit("x-3", "done_for_day", status="done_for_day")
        fake.emit("x-3", "frobnicated", note="unheard of")
        fake.repeat_last_event(2)
        fake.wait_for(lambda: len(parsed) >= 6)
    assert [u.event for u in parsed] == [
        "expired",
        "rejected",
        "done_for_day",
        "frobnicated",
        "frobnicated",
        "frobnicated",
    ]
    assert parsed[0].order.status == OrderStatus.EXPIRED and parsed[0].order.expired_at
    assert parsed[1].order.status == OrderStatus.REJECTED and parsed[1].order.failed_at
    assert parsed[2].order.status == OrderStatus.DONE_FOR_DAY
    assert parsed[3] == parsed[5]


def test_an_external_order_is_announced_and_listed_open(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    with listening_stream(fake) as received:
        fake.binary_frames = False  # text frames parse the same
        placed = fake.place_external("AAPL", "sell", "3", limit_price="250.00")
        assert wait_for_events(fake, received, 1) == ["new"]
    (listed,) = typed_list(Order, client.get_orders(GetOrdersRequest(status="open")))
    assert str(listed.id) == placed["id"] and listed.side == OrderSide.SELL
    assert listed.qty == "3" and listed.limit_price == "250"
    assert fake.submissions() == []


def test_a_replace_creates_a_new_order_and_announces_replaced_then_new(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    old = typed(Order, client.submit_order(limit_buy("rep-1", qty=4, price=150.0)))
    request = ReplaceOrderRequest(limit_price=151.0, client_order_id="rep-2")
    new = typed(Order, client.replace_order_by_id(old.id, request))
    assert new.replaces == old.id and new.status == OrderStatus.ACCEPTED
    assert new.limit_price == "151" and new.qty == "4"
    replaced = typed(Order, client.get_order_by_id(old.id))
    assert replaced.status == OrderStatus.REPLACED and replaced.replaced_by == new.id
    assert [u["event"] for u in fake.trade_updates()] == ["new", "replaced", "new"]


def test_an_activation_delay_puts_new_and_fill_after_the_answer(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    fake.set_activation_delay(0.2)
    client.submit_order(market_buy("late-1"))
    assert fake.order("late-1")["status"] == "accepted"
    fake.wait_for(lambda: fake.order("late-1")["status"] == "filled")
    assert [u["event"] for u in fake.trade_updates()] == ["new", "fill"]


# --- the stream's own failures ---


def test_a_dropped_stream_reconnects_and_what_happened_while_refused_is_never_delivered(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    fake.auto_fill = False
    with listening_stream(fake) as received:
        client.submit_order(limit_buy("gap-1"))
        assert wait_for_events(fake, received, 1) == ["new"]
        fake.refuse_streams(True)
        fake.drop_streams()
        fake.fill("gap-1", "1", "150")  # nobody is listening: lost for good
        fake.wait_for(lambda: fake.refused_handshakes >= 1)  # the SDK tried and was refused
        fake.fill("gap-1", "1", "150")
        fake.refuse_streams(False)
        fake.wait_for(lambda: fake.stream_authentications == 2, timeout=10)
        fake.fill("gap-1", "2", "150")
        assert wait_for_events(fake, received, 2) == ["new", "fill"]
    assert received[1]["data"]["order"]["filled_qty"] == "4"
    assert len(fake.trade_updates()) == 4


def test_a_stream_with_wrong_keys_is_unauthorized(fake: FakeAlpaca) -> None:
    stream = TradingStream("PKWRONG", "nope", raw_data=True, url_override=fake.stream_url)

    async def ignore(update: Any) -> None:
        pass

    stream.subscribe_trade_updates(ignore)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    fake.wait_for(lambda: fake.stream_auth_failures >= 1)
    stop(fake, stream, thread)
    assert fake.stream_authentications == 0


def test_a_notional_order_fills_the_shares_the_amount_buys_to_nine_decimals(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    request = MarketOrderRequest(
        symbol="AAPL", notional=1000, side="buy", time_in_force="day", client_order_id="n-1"
    )
    accepted = typed(Order, client.submit_order(request))
    assert accepted.notional == "1000" and accepted.qty is None
    filled = typed(Order, client.get_order_by_client_id("n-1"))
    assert filled.status == OrderStatus.FILLED and filled.filled_qty == "5.340453938"
    gtc = MarketOrderRequest(symbol="AAPL", notional=10, side="buy", time_in_force="gtc")
    assert api_error(lambda: client.submit_order(gtc)).code == 42210000


def test_without_shorting_a_sell_beyond_the_position_is_refused_403(
    fake: FakeAlpaca, client: TradingClient
) -> None:
    fake.shorting = False
    fake.set_position("AAPL", "2", "180")
    sell = MarketOrderRequest(symbol="AAPL", qty=3, side="sell", time_in_force="day")
    error = api_error(lambda: client.submit_order(sell))
    assert (error.status_code, error.code) == (403, 40310000)
    assert error.message == "insufficient qty available for order (requested: 3, available: 2)"
    sell = MarketOrderRequest(symbol="AAPL", qty=2, side="sell", time_in_force="day")
    assert typed(Order, client.submit_order(sell)).position_intent == "sell_to_close"
    assert fake.positions() == {} and fake.account()["cash"] == "100374.5"
