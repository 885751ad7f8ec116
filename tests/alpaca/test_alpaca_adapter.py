"""The Alpaca adapter driven through the real alpaca-py 0.44 TradingClient and
TradingStream against the fake Alpaca on loopback ports (tests/fakes/alpaca_server.py).

Every wait is bounded. The only SDK retry sleep (3 s) is in the 504-after-accept test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from brokers.alpaca import AlpacaBroker, AlpacaConfig, derive_stream_url, is_paper_endpoint
from brokers.base import BrokerConfigError, BrokerUnavailable
from domain.broker import BrokerReport, Outcome, ReportSource, RequestFailure, RequestKind
from domain.orders import OrderStatus, OrderType, Side, SubmitOrder, TimeInForce
from tests.fakes.alpaca_server import FakeAlpaca, after_accept, drop, hang, refuse, server_error

WAIT_S = 10.0
TIMEOUT_S = 0.5


class RecordingSink:
    """What the adapter tells the service, from any thread; `wait_for` blocks (bounded)
    until a condition on what has arrived holds."""

    def __init__(self) -> None:
        self._arrived = threading.Condition()
        self.reports: list[BrokerReport] = []
        self.failures: list[RequestFailure] = []
        self.gaps: list[str] = []

    def on_report(self, report: BrokerReport) -> None:
        with self._arrived:
            self.reports.append(report)
            self._arrived.notify_all()

    def on_failure(self, failure: RequestFailure) -> None:
        with self._arrived:
            self.failures.append(failure)
            self._arrived.notify_all()

    def on_gap(self, reason: str) -> None:
        with self._arrived:
            self.gaps.append(reason)
            self._arrived.notify_all()

    def wait_for(self, condition: Callable[[], object], what: str, within: float = WAIT_S) -> None:
        with self._arrived:
            if not self._arrived.wait_for(condition, within):
                raise AssertionError(
                    f"timed out waiting for {what}: reports={self.events()} "
                    f"failures={self.failures} gaps={self.gaps}"
                )

    def events(self) -> list[tuple[str, str, str]]:
        return [(r.client_order_id, r.source.value, r.event) for r in list(self.reports)]

    def reports_for(
        self, client_order_id: str, source: ReportSource | None = None, event: str | None = None
    ) -> list[BrokerReport]:
        return [
            r
            for r in list(self.reports)
            if r.client_order_id == client_order_id
            and (source is None or r.source is source)
            and (event is None or r.event == event)
        ]

    def failure_for(self, client_order_id: str) -> RequestFailure:
        self.wait_for(
            lambda: any(f.client_order_id == client_order_id for f in self.failures),
            f"a failure for {client_order_id}",
        )
        return next(f for f in self.failures if f.client_order_id == client_order_id)

    def report(
        self, client_order_id: str, source: ReportSource, event: str | None = None
    ) -> BrokerReport:
        self.wait_for(
            lambda: self.reports_for(client_order_id, source, event),
            f"a {source.value} {event or ''} report for {client_order_id}",
        )
        return self.reports_for(client_order_id, source, event)[0]

    def gap_count(self, reason: str) -> int:
        with self._arrived:
            return sum(1 for g in self.gaps if g.startswith(reason))


Started = Callable[..., tuple[AlpacaBroker, RecordingSink]]


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as alpaca:
        alpaca.set_price("AAPL", "187.25")
        yield alpaca


def config_for(fake: FakeAlpaca, **overrides: Any) -> AlpacaConfig:
    values: dict[str, Any] = {
        "api_key": fake.key_id,
        "secret_key": fake.secret_key,
        "base_url": fake.base_url,
        "stream_url": fake.stream_url,
        "request_timeout_s": TIMEOUT_S,
    }
    values.update(overrides)
    return AlpacaConfig(**values)


@pytest.fixture
def started(fake: FakeAlpaca) -> Iterator[Started]:
    """Start an adapter on the fake and wait until its stream listens."""
    brokers: list[AlpacaBroker] = []

    def start(*, connected: bool = True, **overrides: Any) -> tuple[AlpacaBroker, RecordingSink]:
        broker = AlpacaBroker(config_for(fake, **overrides))
        brokers.append(broker)
        sink = RecordingSink()
        broker.start(sink)
        if connected:
            sink.wait_for(lambda: "trade_updates connected" in sink.gaps, "the stream")
        return broker, sink

    yield start
    for broker in brokers:
        broker.close()


def market(cid: str, qty: str = "3", **more: Any) -> SubmitOrder:
    return SubmitOrder(cid, "AAPL", Side.BUY, Decimal(qty), **more)


def limit(cid: str, qty: str, price: str, side: Side = Side.BUY, **more: Any) -> SubmitOrder:
    return SubmitOrder(
        cid, "AAPL", side, Decimal(qty), OrderType.LIMIT, limit_price=Decimal(price), **more
    )


# --- submit ---------------------------------------------------------------------------------


def test_a_submit_is_accepted_then_filled_on_the_stream_with_exact_decimals(
    fake: FakeAlpaca, started: Started
) -> None:
    fake.set_price("AAPL", "187.2537")
    broker, sink = started()
    broker.submit_order(market("c-1", "0.123456789"))

    accepted = sink.report("c-1", ReportSource.SUBMIT)
    fill = sink.report("c-1", ReportSource.STREAM, "fill")
    assert accepted.event == "accepted"
    assert accepted.order.status is OrderStatus.ACCEPTED
    assert accepted.order.quantity == Decimal("0.123456789")
    assert accepted.order.broker_order_id == fake.order("c-1")["id"]
    assert fill.order.status is OrderStatus.FILLED
    assert fill.execution is not None
    assert fill.execution.quantity == Decimal("0.123456789")
    assert fill.execution.price == Decimal("187.2537")
    assert fill.order.filled_quantity == Decimal("0.123456789")
    assert fill.order.average_fill_price == Decimal("187.2537")
    # What went over the wire is the decimal asked for, as a JSON number.
    (posted,) = fake.submissions()
    assert b"0.123456789" in posted.raw_body
    assert posted.body is not None and posted.body["client_order_id"] == "c-1"


def test_partial_fills_carry_each_execution_and_the_cumulative_order(
    fake: FakeAlpaca, started: Started
) -> None:
    fake.auto_fill = False
    broker, sink = started()
    broker.submit_order(limit("c-2", "4", "187.30"))
    sink.report("c-2", ReportSource.SUBMIT)
    sink.report("c-2", ReportSource.STREAM, "new")

    first = fake.fill("c-2", "1", "187.20")
    partial = sink.report("c-2", ReportSource.STREAM, "partial_fill")
    second = fake.fill("c-2", "3", "187.10")
    fill = sink.report("c-2", ReportSource.STREAM, "fill")

    assert partial.order.status is OrderStatus.PARTIALLY_FILLED
    assert partial.execution is not None
    assert (partial.execution.execution_id, partial.execution.quantity) == (first, Decimal(1))
    assert partial.execution.price == Decimal("187.20")
    assert partial.order.filled_quantity == Decimal(1)
    assert fill.order.status is OrderStatus.FILLED
    assert fill.execution is not None
    assert (fill.execution.execution_id, fill.execution.quantity) == (second, Decimal(3))
    assert fill.order.filled_quantity == Decimal(4)
    assert fill.order.average_fill_price == Decimal("187.125")


def test_a_duplicated_delivery_reaches_the_sink_twice(fake: FakeAlpaca, started: Started) -> None:
    broker, sink = started()
    broker.submit_order(market("c-3"))
    sink.report("c-3", ReportSource.STREAM, "fill")
    fake.repeat_last_event(1)
    sink.wait_for(lambda: len(sink.reports_for("c-3", event="fill")) == 2, "the repeat")
    first, again = sink.reports_for("c-3", event="fill")
    assert first == again  # deduplicating by execution id is the engine's job


def test_a_403_is_refused_with_alpacas_code_and_no_order_exists(
    fake: FakeAlpaca, started: Started
) -> None:
    broker, sink = started()
    fake.fail_next("POST /v2/orders", refuse(403, 40310000, "insufficient buying power"))
    broker.submit_order(market("c-4"))
    failure = sink.failure_for("c-4")
    assert (failure.request, failure.outcome) == (RequestKind.SUBMIT, Outcome.REFUSED)
    assert (failure.code, failure.message) == ("40310000", "insufficient buying power")
    assert fake.orders_for("c-4") == []
    assert broker.health().reachable


def test_a_504_after_the_order_was_taken_is_unknown_and_makes_one_order(
    fake: FakeAlpaca, started: Started
) -> None:
    broker, sink = started()
    fake.fail_next("POST /v2/orders", after_accept(504))
    broker.submit_order(market("c-5"))
    # The SDK sleeps 3 s, re-POSTs, and gets "client_order_id must be unique".
    failure = sink.failure_for("c-5")
    assert (failure.outcome, failure.code) == (Outcome.UNKNOWN, "40010001")
    assert len(fake.submissions()) == 2
    assert len(fake.orders_for("c-5")) == 1
    broker.lookup_order("c-5")
    assert sink.report("c-5", ReportSource.LOOKUP).order.status is OrderStatus.FILLED


def test_an_answer_that_hangs_past_the_timeout_is_unknown(
    fake: FakeAlpaca, started: Started
) -> None:
    broker, sink = started()
    fake.fail_next("POST /v2/orders", hang(30))
    broker.submit_order(market("c-6"))
    # Bounded well below the hang: the adapter's timeout (0.5 s) ended the request.
    sink.wait_for(lambda: sink.failures, "the timeout", within=5 * TIMEOUT_S)
    failure = sink.failure_for("c-6")
    assert (failure.outcome, failure.code) == (Outcome.UNKNOWN, "timeout")
    assert len(fake.orders_for("c-6")) == 1  # it was taken: only a lookup can tell
    assert not broker.health().reachable


def test_a_dropped_connection_is_unknown(fake: FakeAlpaca, started: Started) -> None:
    broker, sink = started()
    fake.fail_next("POST /v2/orders", drop())
    broker.submit_order(market("c-6b"))
    failure = sink.failure_for("c-6b")
    assert (failure.outcome, failure.code) == (Outcome.UNKNOWN, "connection")


def test_a_500_is_unknown_and_no_order_exists(fake: FakeAlpaca, started: Started) -> None:
    broker, sink = started()
    fake.fail_next("POST /v2/orders", server_error(500))
    broker.submit_order(market("c-7"))
    failure = sink.failure_for("c-7")
    assert (failure.outcome, failure.code) == (Outcome.UNKNOWN, "http-500")
    assert fake.orders_for("c-7") == []
    assert not broker.health().reachable
    broker.lookup_order("c-7")  # the next answer makes it reachable again
    sink.wait_for(lambda: len(sink.failures) == 2, "the lookup")
    assert broker.health().reachable


def test_an_order_alpaca_could_not_take_is_refused_without_a_request(
    fake: FakeAlpaca, started: Started
) -> None:
    broker, sink = started()
    broker.submit_order(market("x" * 49))
    broker.submit_order(market("c-8", "0.5", time_in_force=TimeInForce.GTC))
    too_long = sink.failure_for("x" * 49)
    fractional = sink.failure_for("c-8")
    assert (too_long.outcome, too_long.code) == (Outcome.REFUSED, "client-order-id-too-long")
    assert (fractional.outcome, fractional.code) == (Outcome.REFUSED, "fractional-needs-day")
    assert fake.submissions() == []


def test_a_limit_price_is_sent_rounded_in_the_askers_favour(
    fake: FakeAlpaca, started: Started
) -> None:
    fake.auto_fill = False
    broker, sink = started()
    broker.submit_order(limit("c-9", "2", "150.129"))
    broker.submit_order(limit("c-10", "2", "0.123456", side=Side.SELL))
    assert sink.report("c-9", ReportSource.SUBMIT).order.limit_price == Decimal("150.12")
    assert sink.report("c-10", ReportSource.SUBMIT).order.limit_price == Decimal("0.1235")


def test_a_slow_broker_never_blocks_the_caller(fake: FakeAlpaca, started: Started) -> None:
    broker, sink = started()
    fake.set_latency(0.2)
    began = time.monotonic()
    broker.submit_order(market("c-11"))
    broker.lookup_order("c-11")
    broker.cancel_order("c-11", "")
    returned = time.monotonic() - began
    assert returned < 0.2  # all three returned before the first answer could have come
    sink.report("c-11", ReportSource.SUBMIT)
    sink.report("c-11", ReportSource.LOOKUP)


def test_requests_about_one_order_run_in_the_order_asked(
    fake: FakeAlpaca, started: Started
) -> None:
    fake.auto_fill = False
    fake.auto_cancel = False
    broker, sink = started()
    fake.set_latency(0.1, "POST /v2/orders")
    broker.submit_order(limit("c-12", "1", "100"))
    broker.cancel_order("c-12", "")  # looked up by client id: only works after the submit
    cancel = sink.report("c-12", ReportSource.CANCEL)
    assert cancel.order.status is OrderStatus.PENDING_CANCEL
    routes = [r.route for r in fake.requests if r.route != "GET /v2/account"]
    assert routes[:3] == [
        "POST /v2/orders",
        "GET /v2/orders:by_client_order_id",
        "DELETE /v2/orders/{id}",
    ]


# --- lookup and cancel ------------------------------------------------------------------------


def test_a_lookup_finds_the_order_or_says_not_found(fake: FakeAlpaca, started: Started) -> None:
    broker, sink = started()
    broker.submit_order(market("c-13"))
    sink.report("c-13", ReportSource.STREAM, "fill")
    broker.lookup_order("c-13")
    broker.lookup_order("nobody")
    found = sink.report("c-13", ReportSource.LOOKUP)
    missing = sink.failure_for("nobody")
    assert found.order.status is OrderStatus.FILLED
    assert found.event == "filled"
    assert found.order.filled_quantity == Decimal(3)
    assert (missing.request, missing.outcome) == (RequestKind.LOOKUP, Outcome.NOT_FOUND)
    assert missing.code == "40410000"


def test_a_cancel_is_pending_then_cancelled_on_the_stream(
    fake: FakeAlpaca, started: Started
) -> None:
    fake.auto_fill = False
    broker, sink = started()
    broker.submit_order(limit("c-14", "5", "150"))
    accepted = sink.report("c-14", ReportSource.SUBMIT)
    broker.cancel_order("c-14", accepted.order.broker_order_id)
    pending = sink.report("c-14", ReportSource.CANCEL)
    cancelled = sink.report("c-14", ReportSource.STREAM, "canceled")
    assert (pending.order.status, pending.event) == (OrderStatus.PENDING_CANCEL, "pending_cancel")
    assert cancelled.order.status is OrderStatus.CANCELLED
    assert cancelled.order.reason


def test_a_cancel_without_a_broker_id_looks_the_order_up_first(
    fake: FakeAlpaca, started: Started
) -> None:
    fake.auto_fill = False
    broker, sink = started()
    broker.submit_order(limit("c-15", "5", "150"))
    sink.report("c-15", ReportSource.SUBMIT)
    broker.cancel_order("c-15", "")
    assert sink.report("c-15", ReportSource.CANCEL).order.status is OrderStatus.PENDING_CANCEL
    sink.report("c-15", ReportSource.STREAM, "canceled")


def test_cancelling_a_filled_order_is_refused(fake: FakeAlpaca, started: Started) -> None:
    broker, sink = started()
    broker.submit_order(market("c-16"))
    filled = sink.report("c-16", ReportSource.STREAM, "fill")
    broker.cancel_order("c-16", filled.order.broker_order_id)
    failure = sink.failure_for("c-16")
    assert (failure.request, failure.outcome, failure.code) == (
        RequestKind.CANCEL,
        Outcome.REFUSED,
        "42210000",
    )
    assert "filled" in failure.message


def test_cancelling_an_unknown_order_is_refused(fake: FakeAlpaca, started: Started) -> None:
    broker, sink = started()
    broker.cancel_order("ghost", "")
    failure = sink.failure_for("ghost")
    assert (failure.request, failure.outcome) == (RequestKind.CANCEL, Outcome.REFUSED)


def test_a_cancel_that_fails_in_transit_is_unknown(fake: FakeAlpaca, started: Started) -> None:
    fake.auto_fill = False
    broker, sink = started()
    broker.submit_order(limit("c-17", "5", "150"))
    accepted = sink.report("c-17", ReportSource.SUBMIT)
    fake.fail_next("DELETE /v2/orders/{id}", server_error(503))
    broker.cancel_order("c-17", accepted.order.broker_order_id)
    failure = sink.failure_for("c-17")
    assert (failure.request, failure.outcome, failure.code) == (
        RequestKind.CANCEL,
        Outcome.UNKNOWN,
        "http-503",
    )


# --- the stream ---------------------------------------------------------------------------------


def test_rejections_and_rare_events_come_through_the_stream(
    fake: FakeAlpaca, started: Started
) -> None:
    fake.auto_fill = False
    broker, sink = started()
    broker.submit_order(limit("c-18", "5", "150"))
    broker.submit_order(limit("c-19", "5", "150"))
    sink.report("c-18", ReportSource.STREAM, "new")
    sink.report("c-19", ReportSource.STREAM, "new")
    fake.reject("c-18", "insufficient day trading buying power")
    fake.emit("c-19", "done_for_day", status="done_for_day")
    fake.emit("c-19", "something_new")
    rejected = sink.report("c-18", ReportSource.STREAM, "rejected")
    done = sink.report("c-19", ReportSource.STREAM, "done_for_day")
    unheard = sink.report("c-19", ReportSource.STREAM, "something_new")
    assert rejected.order.status is OrderStatus.REJECTED
    assert rejected.order.reason == "insufficient day trading buying power"
    assert done.order.status is OrderStatus.ACCEPTED  # still Alpaca's open order
    assert unheard.order.status is OrderStatus.ACCEPTED


def test_events_of_orders_placed_outside_the_service_are_forwarded(
    fake: FakeAlpaca, started: Started
) -> None:
    _, sink = started()
    external = fake.place_external("AAPL", "sell", "2", limit_price="250.00")
    report = sink.report(external["client_order_id"], ReportSource.STREAM, "new")
    assert report.order.side is Side.SELL
    assert report.order.limit_price == Decimal("250.00")


def test_a_dropped_stream_reconnects_and_reports_a_gap(fake: FakeAlpaca, started: Started) -> None:
    broker, sink = started()
    assert fake.stream_authentications == 1
    fake.drop_streams()
    sink.wait_for(lambda: "trade_updates reconnected" in sink.gaps, "the reconnect")
    assert fake.stream_authentications == 2
    assert broker.health().stream_connected
    broker.submit_order(market("c-20"))
    sink.report("c-20", ReportSource.STREAM, "fill")  # and it still delivers


def test_a_stream_down_past_its_grace_is_unhealthy_and_keeps_asking_for_sweeps(
    fake: FakeAlpaca, started: Started
) -> None:
    broker, sink = started(stream_grace_s=0.5, down_gap_interval_s=0.3)
    fake.refuse_streams(True)
    fake.drop_streams()
    sink.wait_for(lambda: not broker.health().stream_connected, "the grace to run out")
    health = broker.health()
    assert health.reachable and not health.healthy
    assert "trade_updates down" in health.detail
    sink.wait_for(lambda: sink.gap_count("trade_updates down for") >= 2, "periodic gaps")
    fake.refuse_streams(False)
    sink.wait_for(lambda: "trade_updates reconnected" in sink.gaps, "the reconnect", within=20)
    assert broker.health().stream_connected


def test_a_stream_that_never_connects_is_unhealthy_after_the_grace(
    fake: FakeAlpaca, started: Started
) -> None:
    fake.refuse_streams(True)
    broker, sink = started(connected=False, stream_grace_s=0.3, down_gap_interval_s=0.2)
    assert broker.health().stream_connected  # within the grace
    sink.wait_for(lambda: not broker.health().stream_connected, "the grace to run out")
    sink.wait_for(lambda: sink.gap_count("trade_updates down for") >= 1, "a gap")


# --- snapshot, verify, describe -------------------------------------------------------------------


def test_a_snapshot_reads_account_positions_and_orders_as_decimals(
    fake: FakeAlpaca, started: Started
) -> None:
    fake.auto_fill = False
    fake.set_position("MSFT", "2.5", "410.125")
    fake.set_price("MSFT", "415.5")
    broker, sink = started()
    broker.submit_order(limit("open-1", "2", "150.5"))
    broker.submit_order(limit("done-1", "1", "150"))
    sink.report("open-1", ReportSource.SUBMIT)
    sink.report("done-1", ReportSource.SUBMIT)
    fake.fill("done-1", "1", "149.99")
    external = fake.place_external("AAPL", "buy", "7", limit_price="1.00")

    snapshot = broker.snapshot(frozenset({"open-1", "done-1", "never-sent"}))

    account = fake.account()
    assert snapshot.account.cash == Decimal(account["cash"])
    assert snapshot.account.equity == Decimal(account["equity"])
    assert snapshot.account.buying_power == Decimal(account["buying_power"])
    (position,) = [p for p in snapshot.positions if p.symbol == "MSFT"]
    assert (position.quantity, position.average_price) == (Decimal("2.5"), Decimal("410.125"))
    assert position.market_price == Decimal("415.5")
    orders = {o.client_order_id: o for o in snapshot.orders}
    assert set(orders) == {"open-1", "done-1", external["client_order_id"]}
    assert orders["open-1"].status is OrderStatus.ACCEPTED
    assert orders["open-1"].limit_price == Decimal("150.5")
    assert orders["done-1"].status is OrderStatus.FILLED
    assert orders["done-1"].average_fill_price == Decimal("149.99")
    assert orders[external["client_order_id"]].quantity == Decimal(7)
    listed = [r for r in fake.requests if r.route == "GET /v2/orders"]
    assert listed[-1].query["status"] == "open" and listed[-1].query["limit"] == "500"


def test_a_snapshot_raises_unavailable_when_alpaca_is_down(
    fake: FakeAlpaca, started: Started
) -> None:
    broker, _ = started()
    fake.set_down(True)
    with pytest.raises(BrokerUnavailable, match="http-503"):
        broker.snapshot(frozenset())
    assert not broker.health().reachable
    fake.set_down(False)
    broker.snapshot(frozenset())
    assert broker.health().reachable


def test_verify_reads_the_account_and_describe_names_it(fake: FakeAlpaca) -> None:
    broker = AlpacaBroker(config_for(fake))
    info = broker.verify()
    assert info.name == "alpaca"
    assert info.account == fake.account_number
    assert info.endpoint == fake.base_url
    assert info.live is False
    assert broker.describe() == info


def test_verify_with_wrong_keys_names_the_settings(fake: FakeAlpaca) -> None:
    broker = AlpacaBroker(config_for(fake, secret_key="wrong"))
    with pytest.raises(BrokerConfigError) as refused:
        broker.verify()
    message = str(refused.value)
    assert "\n" not in message
    assert message == (
        "Alpaca refused the credentials in ALPACA_API_KEY / ALPACA_SECRET_KEY "
        f"(401 unauthorized) at {fake.base_url}"
    )


def test_verify_when_alpaca_is_unreachable_is_unavailable(fake: FakeAlpaca) -> None:
    base_url = fake.base_url
    fake.close()
    broker = AlpacaBroker(config_for(fake, base_url=base_url))
    with pytest.raises(BrokerUnavailable, match="did not answer"):
        broker.verify()
    assert not broker.health().reachable


def test_close_is_prompt_and_silences_the_adapter(fake: FakeAlpaca, started: Started) -> None:
    fake.auto_fill = False
    broker, sink = started()
    began = time.monotonic()
    broker.close()
    assert time.monotonic() - began < 5  # bounded, not a benchmark
    heard = len(sink.reports) + len(sink.failures)
    broker.submit_order(market("after-close"))
    time.sleep(0.2)
    assert len(sink.reports) + len(sink.failures) == heard
    assert fake.orders_for("after-close") == []


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "stream_url"),
    [
        ("https://paper-api.alpaca.markets", "wss://paper-api.alpaca.markets/stream"),
        ("https://api.alpaca.markets/", "wss://api.alpaca.markets/stream"),
        ("http://127.0.0.1:8123", "ws://127.0.0.1:8123/stream"),
    ],
)
def test_the_stream_url_is_derived_from_the_base_url(base_url: str, stream_url: str) -> None:
    assert derive_stream_url(base_url) == stream_url


def test_a_base_url_that_is_not_http_is_a_config_error() -> None:
    with pytest.raises(BrokerConfigError, match="ALPACA_BASE_URL"):
        derive_stream_url("paper-api.alpaca.markets")


@pytest.mark.parametrize(
    ("base_url", "paper"),
    [
        ("https://paper-api.alpaca.markets", True),
        ("http://127.0.0.1:5000", True),
        ("http://localhost:5000", True),
        ("https://api.alpaca.markets", False),
        ("https://alpaca-proxy.example.com", False),
    ],
)
def test_only_the_paper_api_and_loopback_count_as_paper(base_url: str, paper: bool) -> None:
    assert is_paper_endpoint(base_url) is paper


def test_a_live_endpoint_needs_the_live_opt_in() -> None:
    live = AlpacaConfig("k", "s", "https://api.alpaca.markets", "")
    with pytest.raises(BrokerConfigError, match="TRADING_LIVE"):
        AlpacaBroker(live)
    broker = AlpacaBroker(AlpacaConfig("k", "s", "https://api.alpaca.markets", "", live=True))
    assert broker.describe().live is True


def test_missing_keys_are_a_config_error_naming_them() -> None:
    with pytest.raises(BrokerConfigError, match="ALPACA_API_KEY / ALPACA_SECRET_KEY"):
        AlpacaBroker(AlpacaConfig("", "", "https://paper-api.alpaca.markets", ""))
