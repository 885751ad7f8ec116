"""The paper broker's opt-in behaviours of a real broker (latency, partial fills,
rejections, a stream that beats the REST answer or repeats, ambiguous submits,
outages, the session's close), and its plain default, through the broker port
with a recording sink as the execution engine would see it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brokers.base import BrokerError, BrokerUnavailable
from brokers.paper.adapter import PaperBroker
from brokers.paper.config import Ambiguity, PaperBrokerConfig
from domain.broker import (
    BrokerReport,
    Outcome,
    ReportSource,
    RequestFailure,
    RequestKind,
)
from domain.orders import OrderStatus, OrderType, Side, SubmitOrder, TimeInForce

WAIT_S = 10.0  # only stops a broken run from hanging; nothing is timed
LATENCY_S = 0.05
Message = BrokerReport | RequestFailure | str  # a str: a gap's reason


class RecordingSink:
    """Records what the broker says, in order, from any thread; `wait_for` blocks
    (bounded) until enough has arrived. `in_request` is set by a test while it is
    inside a request, and recorded with every message."""

    def __init__(self) -> None:
        self._arrived = threading.Condition()
        self.messages: list[Message] = []
        self.during_request: list[bool] = []
        self.threads: list[str] = []
        self.in_request = threading.Event()

    def on_report(self, report: BrokerReport) -> None:
        self._record(report)

    def on_failure(self, failure: RequestFailure) -> None:
        self._record(failure)

    def on_gap(self, reason: str) -> None:
        self._record(reason)

    def _record(self, message: Message) -> None:
        with self._arrived:
            self.messages.append(message)
            self.during_request.append(self.in_request.is_set())
            self.threads.append(threading.current_thread().name)
            self._arrived.notify_all()

    def wait_for(self, count: int) -> list[Message]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.messages) >= count, WAIT_S):
                raise AssertionError(f"expected {count} messages, got {self.messages}")
            return list(self.messages)

    @property
    def reports(self) -> list[BrokerReport]:
        with self._arrived:
            return [m for m in self.messages if isinstance(m, BrokerReport)]

    @property
    def failures(self) -> list[RequestFailure]:
        with self._arrived:
            return [m for m in self.messages if isinstance(m, RequestFailure)]

    def clear(self) -> None:
        with self._arrived:
            self.messages.clear()
            self.during_request.clear()
            self.threads.clear()


PRICES = {"SPY": Decimal("100"), "QQQ": Decimal("50"), "GME": Decimal("20")}


def market(
    client_order_id: str, quantity: str = "10", side: Side = Side.BUY, symbol: str = "SPY"
) -> SubmitOrder:
    return SubmitOrder(client_order_id, symbol, side, Decimal(quantity))


def limit(
    client_order_id: str,
    price: str,
    quantity: str = "10",
    time_in_force: TimeInForce = TimeInForce.DAY,
) -> SubmitOrder:
    return SubmitOrder(
        client_order_id,
        "SPY",
        Side.BUY,
        Decimal(quantity),
        OrderType.LIMIT,
        Decimal(price),
        time_in_force,
    )


@pytest.fixture
def opened() -> Iterator[list[PaperBroker]]:
    """Brokers a test started; closed after it, so no delivery thread outlives it."""
    brokers: list[PaperBroker] = []
    yield brokers
    for broker in brokers:
        broker.close()


def started(
    opened: list[PaperBroker], config: PaperBrokerConfig | None = None
) -> tuple[PaperBroker, RecordingSink]:
    broker = PaperBroker(PRICES.get, config or PaperBrokerConfig(slippage_bps=Decimal(0)))
    sink = RecordingSink()
    broker.start(sink)
    opened.append(broker)
    return broker, sink


def statuses(messages: list[Message]) -> list[object]:
    return [m.order.status if isinstance(m, BrokerReport) else m for m in messages]


# --- the default: what the whole suite relies on --------------------------------------


def test_by_default_a_market_order_is_acknowledged_then_filled_inside_the_submit(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened, PaperBrokerConfig(slippage_bps=Decimal(10)))
    sink.in_request.set()
    broker.submit_order(market("c1"))
    sink.in_request.clear()

    ack, fill = sink.messages
    assert isinstance(ack, BrokerReport) and isinstance(fill, BrokerReport)
    assert (ack.source, ack.event, ack.order.status) == (
        ReportSource.SUBMIT,
        "accepted",
        OrderStatus.ACCEPTED,
    )
    assert (fill.source, fill.event, fill.order.status) == (
        ReportSource.STREAM,
        "fill",
        OrderStatus.FILLED,
    )
    assert fill.execution is not None
    assert fill.execution.execution_id == "paper-1-x1"
    assert fill.execution.quantity == Decimal(10)
    assert fill.execution.price == fill.order.average_fill_price == Decimal("100.1000")
    assert fill.order.filled_quantity == Decimal(10)
    assert fill.order.updated_at is None  # no clock of its own
    assert all(sink.during_request)  # synchronous, from inside the request
    assert broker.account().cash == Decimal(100000) - Decimal("1001.0")


def test_by_default_the_same_requests_give_the_same_reports(opened: list[PaperBroker]) -> None:
    def run() -> list[Message]:
        broker, sink = started(opened)
        broker.submit_order(market("c1"))
        broker.submit_order(limit("c2", "90"))
        broker.cancel_order("c2", "paper-2")
        broker.lookup_order("c1")
        return sink.messages

    assert run() == run()


def test_a_client_order_id_is_unique_for_ever(opened: list[PaperBroker]) -> None:
    broker, sink = started(opened)
    broker.submit_order(market("c1"))
    cash = broker.account().cash
    sink.clear()

    broker.submit_order(market("c1", "5"))

    [failure] = sink.messages
    assert isinstance(failure, RequestFailure)
    assert (failure.outcome, failure.message) == (
        Outcome.UNKNOWN,
        "client_order_id must be unique",
    )
    assert broker.account().cash == cash  # nothing taken


def test_a_lookup_answers_the_current_state_or_not_found(opened: list[PaperBroker]) -> None:
    broker, sink = started(opened)
    broker.submit_order(limit("c1", "90"))
    broker.lookup_order("c1")
    broker.cancel_order("c1", "paper-1")
    broker.lookup_order("c1")
    broker.lookup_order("nobody")

    assert [m.order.status for m in sink.reports if m.source is ReportSource.LOOKUP] == [
        OrderStatus.ACCEPTED,
        OrderStatus.CANCELLED,
    ]
    [missing] = sink.failures
    assert (missing.request, missing.outcome) == (RequestKind.LOOKUP, Outcome.NOT_FOUND)


def test_a_snapshot_lists_open_orders_and_closed_ones_among_those_asked(
    opened: list[PaperBroker],
) -> None:
    broker, _ = started(opened)
    broker.submit_order(limit("open", "90"))
    broker.submit_order(market("filled"))
    broker.submit_order(market("also-filled"))

    snapshot = broker.snapshot(frozenset({"filled"}))

    assert {o.client_order_id: o.status for o in snapshot.orders} == {
        "open": OrderStatus.ACCEPTED,
        "filled": OrderStatus.FILLED,
    }
    [position] = snapshot.positions
    assert position.quantity == Decimal(20)


def test_requests_before_start_fail_and_after_close_are_ignored() -> None:
    broker = PaperBroker(PRICES.get)
    with pytest.raises(BrokerError, match="not started"):
        broker.submit_order(market("c1"))
    sink = RecordingSink()
    broker.start(sink)
    broker.close()

    broker.submit_order(market("c1"))

    assert sink.messages == []


def test_the_sink_may_call_the_broker_back_from_inside_an_answer(
    opened: list[PaperBroker],
) -> None:
    class LookingUp(RecordingSink):
        def on_failure(self, failure: RequestFailure) -> None:
            super().on_failure(failure)
            if failure.outcome is Outcome.UNKNOWN:
                broker.lookup_order(failure.client_order_id)

    broker = PaperBroker(PRICES.get, PaperBrokerConfig(unknown_submits=(Ambiguity.TAKEN,)))
    opened.append(broker)
    sink = LookingUp()
    broker.start(sink)

    broker.submit_order(market("c1"))

    assert [type(m).__name__ for m in sink.messages] == [
        "RequestFailure",
        "BrokerReport",  # the lookup, answered from inside the failure's delivery
        "BrokerReport",  # the fill on the stream
    ]
    assert [r.source for r in sink.reports] == [ReportSource.LOOKUP, ReportSource.STREAM]


def test_a_config_outside_its_domain_is_refused() -> None:
    with pytest.raises(ValueError, match="partial_fills"):
        PaperBrokerConfig(partial_fills=0)
    with pytest.raises(ValueError, match="reject_ratio"):
        PaperBrokerConfig(reject_ratio=1.5)
    with pytest.raises(ValueError, match="latency_s"):
        PaperBrokerConfig(latency_s=-1)


# --- latency ----------------------------------------------------------------------------


def test_with_latency_the_answers_come_after_the_request_from_the_brokers_thread(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(
        opened, PaperBrokerConfig(latency_s=LATENCY_S, partial_fills=3, slippage_bps=Decimal(0))
    )
    sink.in_request.set()
    broker.submit_order(market("c1"))
    sink.in_request.clear()

    messages = sink.wait_for(4)

    assert statuses(messages) == [
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]  # in order
    assert not any(sink.during_request)
    assert set(sink.threads) == {"paper-broker-delivery"}
    # The broker's state moved at once; only the answers were late.
    assert broker.snapshot(frozenset()).positions[0].quantity == Decimal(10)


def test_close_stops_the_delivery_thread_and_drops_what_was_not_delivered(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened, PaperBrokerConfig(latency_s=30.0))
    broker.submit_order(market("c1"))

    broker.close()

    assert not any(t.name == "paper-broker-delivery" for t in threading.enumerate())
    assert sink.messages == []


def test_drain_waits_until_every_answer_is_delivered(opened: list[PaperBroker]) -> None:
    broker, sink = started(opened, PaperBrokerConfig(latency_s=LATENCY_S))
    broker.submit_order(market("c1"))
    broker.lookup_order("c1")

    assert broker.drain(WAIT_S)
    assert len(sink.messages) == 3


# --- partial fills ----------------------------------------------------------------------


def test_partial_fills_split_the_order_into_executions_with_an_exact_average(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened, PaperBrokerConfig(partial_fills=3, slippage_bps=Decimal(0)))
    broker.submit_order(market("c1"))

    _, *fills = sink.reports
    assert [(f.event, f.order.status) for f in fills] == [
        ("partial_fill", OrderStatus.PARTIALLY_FILLED),
        ("partial_fill", OrderStatus.PARTIALLY_FILLED),
        ("fill", OrderStatus.FILLED),
    ]
    executions = [f.execution for f in fills if f.execution is not None]
    assert [(e.quantity, e.price) for e in executions] == [
        (Decimal(4), Decimal("100")),
        (Decimal(3), Decimal("100.01")),
        (Decimal(3), Decimal("100.02")),
    ]
    assert len({e.execution_id for e in executions}) == 3
    assert [f.order.filled_quantity for f in fills] == [Decimal(4), Decimal(7), Decimal(10)]
    assert fills[-1].order.average_fill_price == Decimal("1000.09") / 10
    assert broker.account().cash == Decimal(100000) - Decimal("1000.09")


def test_a_split_fill_never_crosses_the_limit_price(opened: list[PaperBroker]) -> None:
    broker, sink = started(opened, PaperBrokerConfig(partial_fills=4, slippage_bps=Decimal(0)))
    broker.submit_order(limit("c1", "100.01"))

    prices = [r.execution.price for r in sink.reports if r.execution is not None]
    assert prices == [Decimal("100"), Decimal("100.01"), Decimal("100.01"), Decimal("100.01")]


@settings(max_examples=200, deadline=None)
@given(
    quantity=st.decimals(
        min_value=Decimal("0.000000001"), max_value=Decimal(10**9), places=9, allow_nan=False
    ),
    parts=st.integers(min_value=1, max_value=25),
    price=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=2),
    side=st.sampled_from(Side),
)
def test_any_quantity_in_any_number_of_executions_sums_exactly_with_the_exact_average(
    quantity: Decimal, parts: int, price: Decimal, side: Side
) -> None:
    prices = {"SPY": price}
    config = PaperBrokerConfig(
        starting_cash=Decimal(10**13),
        slippage_bps=Decimal(0),
        partial_fills=parts,
        allow_short=True,
    )
    broker = PaperBroker(prices.get, config)
    sink = RecordingSink()
    broker.start(sink)

    broker.submit_order(SubmitOrder("c1", "SPY", side, quantity))

    fills = [r for r in sink.reports if r.execution is not None]
    executions = [f.execution for f in fills if f.execution is not None]
    assert len(executions) == parts
    assert all(e.quantity > 0 for e in executions)
    assert sum(e.quantity for e in executions) == quantity
    assert len({e.execution_id for e in executions}) == parts
    final = fills[-1].order
    assert final.status is OrderStatus.FILLED
    assert final.filled_quantity == quantity
    total = sum((e.quantity * e.price for e in executions), Decimal(0))
    assert final.average_fill_price == total / sum(e.quantity for e in executions)
    assert [f.order.status for f in fills[:-1]] == [OrderStatus.PARTIALLY_FILLED] * (parts - 1)


# --- rejections -------------------------------------------------------------------------


def test_a_scripted_rejection_is_a_definite_refusal_that_takes_nothing(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened, PaperBrokerConfig(rejections={"GME": "asset is not tradable"}))
    broker.submit_order(market("c1", symbol="GME"))
    broker.submit_order(market("c2", symbol="SPY"))
    broker.lookup_order("c1")

    refusal, not_found = sink.failures
    assert (refusal.client_order_id, refusal.outcome, refusal.message) == (
        "c1",
        Outcome.REFUSED,
        "asset is not tradable",
    )
    assert not_found.outcome is Outcome.NOT_FOUND
    assert [r.client_order_id for r in sink.reports] == ["c2", "c2"]


def test_an_asynchronous_rejection_follows_an_acknowledgement(opened: list[PaperBroker]) -> None:
    broker, sink = started(
        opened,
        PaperBrokerConfig(rejections={"GME": "asset is not tradable"}, async_rejections=True),
    )
    broker.submit_order(market("c1", symbol="GME"))
    broker.lookup_order("c1")

    ack, rejected, looked_up = sink.reports
    assert (ack.source, ack.order.status) == (ReportSource.SUBMIT, OrderStatus.ACCEPTED)
    assert (rejected.source, rejected.event, rejected.order.status) == (
        ReportSource.STREAM,
        "rejected",
        OrderStatus.REJECTED,
    )
    assert rejected.order.reason == "asset is not tradable"
    assert looked_up.order.status is OrderStatus.REJECTED
    assert broker.positions() == []


def test_an_account_refusal_stays_a_request_failure_with_async_rejections(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened, PaperBrokerConfig(async_rejections=True, reject_ratio=1.0))
    broker.submit_order(market("c1", quantity="1000000"))

    [failure] = sink.messages
    assert isinstance(failure, RequestFailure)
    assert "insufficient buying power" in failure.message


def refused_at_random(seed: int, ratio: float, count: int) -> list[str]:
    broker = PaperBroker(PRICES.get, PaperBrokerConfig(reject_ratio=ratio, seed=seed))
    sink = RecordingSink()
    broker.start(sink)
    for n in range(count):
        broker.submit_order(market(f"c{n}", quantity="1"))
    assert all(f.outcome is Outcome.REFUSED for f in sink.failures)
    return [f.client_order_id for f in sink.failures]


def test_random_rejections_refuse_some_orders_and_not_others() -> None:
    refused = refused_at_random(seed=7, ratio=0.5, count=40)
    assert 0 < len(refused) < 40
    assert refused_at_random(seed=7, ratio=0.0, count=40) == []
    assert len(refused_at_random(seed=7, ratio=1.0, count=40)) == 40


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(), ratio=st.floats(min_value=0, max_value=1), count=st.integers(0, 30))
def test_random_rejections_with_a_seed_are_reproducible(
    seed: int, ratio: float, count: int
) -> None:
    assert refused_at_random(seed, ratio, count) == refused_at_random(seed, ratio, count)


# --- the stream beats the answer, or repeats ------------------------------------------------


def test_fill_before_ack_delivers_the_fill_before_a_stale_acknowledgement(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened, PaperBrokerConfig(fill_before_ack=True))
    broker.submit_order(market("c1"))

    fill, ack = sink.reports
    assert (fill.source, fill.order.status) == (ReportSource.STREAM, OrderStatus.FILLED)
    assert (ack.source, ack.order.status) == (ReportSource.SUBMIT, OrderStatus.ACCEPTED)


def test_duplicate_reports_deliver_every_report_twice_and_failures_once(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened, PaperBrokerConfig(duplicate_reports=True))
    broker.submit_order(market("c1"))
    broker.cancel_order("c1", "paper-1")  # refused: it is filled

    ack, ack_again, fill, fill_again, refusal = sink.messages
    assert ack == ack_again and fill == fill_again
    assert isinstance(refusal, RequestFailure)


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("market"), st.sampled_from(["1", "2.5", "7"])),
        st.tuples(st.just("limit"), st.sampled_from(["90", "100", "110"])),
        st.tuples(st.just("cancel"), st.integers(0, 5)),
        st.tuples(st.just("fill"), st.integers(0, 5)),
        st.tuples(st.just("expire"), st.just("")),
    ),
    max_size=12,
)


def run_operations(
    config: PaperBrokerConfig, operations: list[tuple[str, object]], latency: bool = False
) -> tuple[list[Message], list[bool]]:
    broker = PaperBroker(PRICES.get, config)
    sink = RecordingSink()
    broker.start(sink)
    try:
        for n, (operation, argument) in enumerate(operations):
            sink.in_request.set()
            if operation == "market":
                broker.submit_order(market(f"c{n}", str(argument)))
            elif operation == "limit":
                broker.submit_order(limit(f"c{n}", str(argument)))
            elif operation == "cancel":
                broker.cancel_order(f"c{argument}", "")
            elif operation == "fill":
                if f"c{argument}" in {o.client_order_id for o in broker.resting()}:
                    broker.fill_resting(f"c{argument}")
            else:
                broker.expire_day_orders()
            sink.in_request.clear()
        if latency:
            assert broker.drain(WAIT_S)
        return list(sink.messages), list(sink.during_request)
    finally:
        broker.close()


@settings(max_examples=100, deadline=None)
@given(operations=OPERATIONS, parts=st.integers(1, 3))
def test_with_duplicate_reports_every_report_arrives_exactly_twice(
    operations: list[tuple[str, object]], parts: int
) -> None:
    plain, _ = run_operations(PaperBrokerConfig(partial_fills=parts), operations)
    doubled, _ = run_operations(
        PaperBrokerConfig(partial_fills=parts, duplicate_reports=True), operations
    )

    expected = [m for m in plain for _ in range(2 if isinstance(m, BrokerReport) else 1)]
    assert doubled == expected


@settings(max_examples=10, deadline=None)
@given(operations=OPERATIONS, parts=st.integers(1, 3))
def test_with_latency_every_request_returns_before_its_answers_in_the_same_order(
    operations: list[tuple[str, object]], parts: int
) -> None:
    plain, _ = run_operations(PaperBrokerConfig(partial_fills=parts), operations)
    late, during = run_operations(
        PaperBrokerConfig(partial_fills=parts, latency_s=LATENCY_S), operations, latency=True
    )

    assert late == plain
    assert not any(during)


# --- ambiguous submits --------------------------------------------------------------------


def test_a_submit_taken_under_an_unknown_answer_is_found_by_a_lookup(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened, PaperBrokerConfig(unknown_outcomes={"c1": Ambiguity.TAKEN}))
    broker.submit_order(market("c1"))
    broker.lookup_order("c1")

    timeout, fill, looked_up = sink.messages
    assert isinstance(timeout, RequestFailure)
    assert (timeout.request, timeout.outcome, timeout.code) == (
        RequestKind.SUBMIT,
        Outcome.UNKNOWN,
        "timeout",
    )
    assert isinstance(fill, BrokerReport) and fill.source is ReportSource.STREAM
    assert isinstance(looked_up, BrokerReport)
    assert (looked_up.source, looked_up.order.status) == (ReportSource.LOOKUP, OrderStatus.FILLED)


def test_a_silent_taken_submit_is_told_only_by_a_lookup(opened: list[PaperBroker]) -> None:
    broker, sink = started(
        opened, PaperBrokerConfig(unknown_outcomes={"c1": Ambiguity.TAKEN_SILENT})
    )
    broker.submit_order(market("c1"))

    [timeout] = sink.messages
    assert isinstance(timeout, RequestFailure) and timeout.outcome is Outcome.UNKNOWN
    assert broker.snapshot(frozenset()).positions[0].quantity == Decimal(10)


def test_a_submit_not_taken_is_not_found_and_its_resubmission_is_taken_once(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened, PaperBrokerConfig(unknown_submits=(Ambiguity.NOT_TAKEN,)))
    broker.submit_order(market("c1"))
    broker.lookup_order("c1")
    broker.submit_order(market("c1"))

    error, not_found, ack, fill = sink.messages
    assert isinstance(error, RequestFailure) and error.outcome is Outcome.UNKNOWN
    assert error.code == "http-500"
    assert isinstance(not_found, RequestFailure) and not_found.outcome is Outcome.NOT_FOUND
    assert statuses([ack, fill]) == [OrderStatus.ACCEPTED, OrderStatus.FILLED]
    assert broker.positions()[0].quantity == Decimal(10)


@settings(max_examples=100, deadline=None)
@given(
    script=st.lists(st.sampled_from([None, *Ambiguity]), max_size=8),
    quantities=st.lists(st.sampled_from(["1", "0.5", "3"]), min_size=1, max_size=6),
    fill_before_ack=st.booleans(),
)
def test_resolving_every_unknown_answer_by_a_lookup_takes_each_order_exactly_once(
    script: list[Ambiguity | None], quantities: list[str], fill_before_ack: bool
) -> None:
    """The engine's discipline: on UNKNOWN look up; on NOT_FOUND send again (same id)."""
    config = PaperBrokerConfig(unknown_submits=tuple(script), fill_before_ack=fill_before_ack)
    broker = PaperBroker(PRICES.get, config)
    sink = RecordingSink()
    broker.start(sink)

    for n, quantity in enumerate(quantities):
        order = market(f"c{n}", quantity)
        for _ in range(len(script) + 1):  # bounded: each retry consumes the script
            sink.clear()
            broker.submit_order(order)
            if not any(isinstance(m, RequestFailure) for m in sink.messages):
                break
            sink.clear()
            broker.lookup_order(order.client_order_id)
            if not sink.failures:
                break  # found: it was taken
        else:
            raise AssertionError(f"{order.client_order_id} never taken")

    snapshot = broker.snapshot(frozenset(f"c{n}" for n in range(len(quantities))))
    assert len(snapshot.orders) == len(quantities)
    assert all(o.status is OrderStatus.FILLED for o in snapshot.orders)
    [position] = snapshot.positions
    assert position.quantity == sum(Decimal(q) for q in quantities)


# --- outages -----------------------------------------------------------------------------


def test_while_down_every_request_is_unknown_and_nothing_is_taken(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened)
    broker.submit_order(limit("resting", "90"))
    sink.clear()

    broker.set_down(True)
    broker.submit_order(market("c1"))
    broker.cancel_order("resting", "paper-1")
    broker.lookup_order("resting")

    assert [(f.request, f.outcome) for f in sink.failures] == [
        (RequestKind.SUBMIT, Outcome.UNKNOWN),
        (RequestKind.CANCEL, Outcome.UNKNOWN),
        (RequestKind.LOOKUP, Outcome.UNKNOWN),
    ]
    assert len(sink.messages) == 3
    with pytest.raises(BrokerUnavailable):
        broker.snapshot(frozenset())
    assert not broker.health().reachable and not broker.health().healthy

    broker.set_down(False)
    assert broker.health().healthy
    assert {o.client_order_id: o.status for o in broker.snapshot(frozenset()).orders} == {
        "resting": OrderStatus.ACCEPTED  # the cancel never reached it; c1 was not taken
    }


def test_what_happens_while_down_is_not_streamed_and_coming_back_reports_a_gap(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened, PaperBrokerConfig(down=True))
    assert not broker.health().reachable
    broker.set_down(False)
    broker.submit_order(limit("c1", "90"))
    sink.clear()

    broker.set_down(True)
    broker.fill_resting("c1")
    assert sink.messages == []
    broker.set_down(False)

    [gap] = sink.messages
    assert isinstance(gap, str) and "missed" in gap
    broker.lookup_order("c1")
    assert sink.reports[-1].order.status is OrderStatus.FILLED


# --- the session, and a resting order's fills ------------------------------------------------


def test_expire_day_orders_expires_every_resting_day_order_and_only_those(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened)
    broker.submit_order(limit("day", "90"))
    broker.submit_order(limit("gtc", "90", time_in_force=TimeInForce.GTC))
    broker.submit_order(market("filled"))
    sink.clear()

    assert broker.expire_day_orders() == ["day"]

    [expired] = sink.reports
    assert (expired.client_order_id, expired.source, expired.event, expired.order.status) == (
        "day",
        ReportSource.STREAM,
        "expired",
        OrderStatus.EXPIRED,
    )
    assert {o.client_order_id for o in broker.snapshot(frozenset({"day"})).orders} == {
        "day",
        "gtc",
    }


def test_a_resting_order_fills_partly_then_fully_with_the_exact_average(
    opened: list[PaperBroker],
) -> None:
    broker, sink = started(opened)
    broker.submit_order(limit("c1", "90"))
    sink.clear()

    broker.fill_resting("c1", Decimal(4))
    last = broker.fill_resting("c1", price=Decimal("89.5"))

    partial, full = sink.reports
    assert (partial.event, partial.order.status, partial.order.filled_quantity) == (
        "partial_fill",
        OrderStatus.PARTIALLY_FILLED,
        Decimal(4),
    )
    assert partial.execution is not None and partial.execution.price == Decimal(90)
    assert (full.event, full.order.status) == ("fill", OrderStatus.FILLED)
    assert full.execution is not None and full.execution.quantity == Decimal(6)
    assert [partial.execution.execution_id, full.execution.execution_id] == [
        "paper-1-x1",
        "paper-1-x2",
    ]
    assert last == full.order
    assert full.order.average_fill_price == (4 * Decimal(90) + 6 * Decimal("89.5")) / 10


def test_only_an_open_order_can_be_filled_and_never_beyond_its_quantity(
    opened: list[PaperBroker],
) -> None:
    broker, _ = started(opened)
    broker.submit_order(limit("c1", "90"))
    with pytest.raises(ValueError, match="fill quantity"):
        broker.fill_resting("c1", Decimal(11))
    with pytest.raises(BrokerError, match="not resting"):
        broker.fill_resting("nobody")
    broker.cancel_order("c1", "paper-1")
    with pytest.raises(BrokerError, match="it is cancelled"):
        broker.fill_resting("c1")
