"""The execution engine against a broker that behaves like a real one (the paper
simulator with its real-broker habits switched on): ambiguous submissions,
partial fills, repeated reports, fills that beat the acknowledgement, refusals,
latency. Whatever happens: one risk decision, at most one order at the broker;
the core's orders end as the broker's did; every fill is booked exactly once;
every report that changed an order is in the journal before the change."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokers.paper.adapter import PaperBroker
from brokers.paper.config import Ambiguity, PaperBrokerConfig
from domain.broker import BrokerOrder
from domain.orders import OrderStatus
from engines.market import MarketPrices
from tests.core.harness import Harness, make_harness
from tests.support.polling import wait_until

PRICE = Decimal("100")
SYMBOLS = ("SPY", "QQQ", "IWM", "DIA")


class WatchedPaper(PaperBroker):
    """The simulator, noting for every request whether the sequencer was held by the
    thread that made it (DESIGN invariant 9: never, for a real broker)."""

    sequencer: Any = None
    held: list[bool]

    def _note(self) -> None:
        self.held.append(bool(self.sequencer._lock._is_owned()))

    def submit_order(self, order: Any) -> None:
        self._note()
        super().submit_order(order)

    def cancel_order(self, client_order_id: str, broker_order_id: str) -> None:
        self._note()
        super().cancel_order(client_order_id, broker_order_id)

    def lookup_order(self, client_order_id: str) -> None:
        self._note()
        super().lookup_order(client_order_id)


def _trade(calendar: Any, config: PaperBrokerConfig, quantities: list[str]) -> Harness:
    # The broker prices its fills from the last prices the core keeps.
    market: list[MarketPrices] = []
    broker = WatchedPaper(lambda symbol: market[0].last_price(symbol), config)
    broker.held = []
    harness = make_harness(calendar, broker)
    broker.sequencer = harness.core.bus
    market.append(harness.core.prices)
    for symbol, quantity in zip(SYMBOLS, quantities, strict=False):
        harness.signal(symbol=symbol, quantity=quantity, price=str(PRICE))
    return harness


def _at_broker(harness: Harness) -> dict[str, BrokerOrder]:
    broker = harness.core.execution._broker
    assert isinstance(broker, PaperBroker)
    return {o.client_order_id: o for o in broker.snapshot(frozenset()).orders} | {
        cid: o for cid, o in broker._orders.items()
    }


def _check_invariants(harness: Harness) -> None:
    at_broker = _at_broker(harness)
    orders = harness.core.execution.orders(open_only=False)
    # One decision, one client order id, at most one order at the broker.
    assert len({o.decision_id for o in orders}) == len(orders)
    assert len({o.client_order_id for o in orders}) == len(orders)
    for order in orders:
        theirs = at_broker.get(order.client_order_id)
        if theirs is None:
            assert order.status in (OrderStatus.REJECTED, OrderStatus.SUBMITTED), order
            assert order.filled_quantity == 0
            continue
        assert order.filled_quantity == theirs.filled_quantity, (order, theirs)
        if theirs.filled_quantity:
            assert order.average_fill_price == theirs.average_fill_price
        if theirs.status.is_terminal:
            assert order.status is theirs.status, (order, theirs)
        # Each execution booked once.
        executions = [c.execution_id for c in order.history if c.execution_id]
        assert len(executions) == len(set(executions))
    # Positions are the sum of fills, exactly.
    for symbol in {o.symbol for o in orders}:
        filled = sum((o.filled_quantity for o in orders if o.symbol == symbol), Decimal(0))
        assert harness.core.portfolio.quantity(symbol) == filled
    _check_reports_precede_changes(harness)


def _check_reports_precede_changes(harness: Harness) -> None:
    """Every OrderUpdated past the intent is caused by an earlier journaled record:
    the broker's report or failure that justified it, or the cancel request."""
    records = {r.seq: r for r in harness.records()}
    for record in records.values():
        if record.event_type != "OrderUpdated":
            continue
        status = json.loads(record.payload)["order"]["status"]
        if status == "NEW":
            assert records[record.caused_by].event_type == "RiskDecisionMade"
            continue
        cause = records[record.caused_by]
        assert cause.seq < record.seq
        assert cause.event_type in (
            "BrokerReportReceived",
            "BrokerRequestFailed",
            "BrokerSwept",
            "CancelRequested",
        ), (record, cause)


AMBIGUITIES = st.sampled_from([None, Ambiguity.TAKEN, Ambiguity.TAKEN_SILENT, Ambiguity.NOT_TAKEN])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    outcomes=st.lists(AMBIGUITIES, min_size=1, max_size=4),
    partial_fills=st.integers(1, 4),
    duplicate=st.booleans(),
    fill_first=st.booleans(),
    quantities=st.lists(
        st.sampled_from(["1", "3", "10", "7.5", "0.123456789"]), min_size=1, max_size=4
    ),
)
def test_one_decision_is_at_most_one_order_and_ends_as_the_broker_says(
    calendar: Any,
    outcomes: list[Ambiguity | None],
    partial_fills: int,
    duplicate: bool,
    fill_first: bool,
    quantities: list[str],
) -> None:
    config = PaperBrokerConfig(
        partial_fills=partial_fills,
        duplicate_reports=duplicate,
        fill_before_ack=fill_first,
        unknown_submits=tuple(outcomes),
    )
    harness = _trade(calendar, config, quantities)

    _check_invariants(harness)
    # Every order had an answer: none is left unresolved, all are filled.
    for order in harness.core.execution.orders(open_only=False):
        assert order.status is OrderStatus.FILLED, order


def test_an_unclear_submission_is_looked_up_and_adopted_not_sent_twice(calendar: Any) -> None:
    harness = _trade(calendar, PaperBrokerConfig(unknown_submits=(Ambiguity.TAKEN_SILENT,)), ["5"])

    [order] = harness.core.execution.orders(open_only=False)
    assert order.status is OrderStatus.FILLED
    reasons = [c.reason for c in order.history]
    assert reasons[1].startswith("unresolved: the broker gave no clear answer (timeout)")
    assert [c.status for c in order.history] == [
        OrderStatus.NEW,
        OrderStatus.SUBMITTED,
        OrderStatus.FILLED,
    ]
    assert harness.core.execution.stats.submitted == 1  # looked up, never resent
    [failure] = harness.payloads("BrokerRequestFailed")
    assert failure["failure"]["outcome"] == "UNKNOWN"


def test_an_order_the_broker_never_took_is_resubmitted_with_the_same_id(calendar: Any) -> None:
    harness = _trade(calendar, PaperBrokerConfig(unknown_submits=(Ambiguity.NOT_TAKEN,)), ["5"])

    [order] = harness.core.execution.orders(open_only=False)
    assert order.status is OrderStatus.FILLED
    assert harness.core.execution.stats.submitted == 2  # sent, found missing, sent again
    outcomes = [p["failure"]["outcome"] for p in harness.payloads("BrokerRequestFailed")]
    assert outcomes == ["UNKNOWN", "NOT_FOUND"]
    assert len(_at_broker(harness)) == 1


def test_a_definite_refusal_is_rejected_with_the_brokers_words_and_never_retried(
    calendar: Any,
) -> None:
    config = PaperBrokerConfig(rejections={"SPY": "trade denied due to pattern day trading"})
    harness = _trade(calendar, config, ["5"])

    [order] = harness.core.execution.orders(open_only=False)
    assert order.status is OrderStatus.REJECTED
    assert order.history[-1].reason == (
        "refused by the broker (40310000) trade denied due to pattern day trading"
    )
    assert harness.core.execution.stats.submitted == 1


def test_a_repeated_fill_is_journaled_once_and_booked_once(calendar: Any) -> None:
    harness = _trade(calendar, PaperBrokerConfig(duplicate_reports=True, partial_fills=3), ["9"])

    [order] = harness.core.execution.orders(open_only=False)
    assert order.filled_quantity == 9 and order.status is OrderStatus.FILLED
    reports = harness.payloads("BrokerReportReceived")
    executions = [
        r["report"]["execution"]["execution_id"] for r in reports if r["report"]["execution"]
    ]
    assert len(executions) == len(set(executions)) == 3  # the repeats changed nothing
    assert harness.core.portfolio.quantity("SPY") == 9


def test_with_latency_the_answers_come_later_as_inputs(calendar: Any) -> None:
    """A broker that answers from its own thread is a real broker to the engine: the
    order is sent after the input, and its answers are inputs (caused by nothing)."""
    harness = _trade(calendar, PaperBrokerConfig(latency_s=0.01, partial_fills=2), ["4"])

    def filled() -> bool:
        with harness.core.bus.reading():
            [order] = harness.core.execution.orders(open_only=False)
            return order.status is OrderStatus.FILLED

    assert wait_until(filled)
    harness.core.execution.close()
    reports = harness.records("BrokerReportReceived")
    assert reports and all(r.caused_by == 0 for r in reports)
    _check_invariants(harness)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    outcomes=st.lists(AMBIGUITIES, min_size=1, max_size=3),
    partial_fills=st.integers(1, 3),
    duplicate=st.booleans(),
    fill_first=st.booleans(),
)
def test_the_same_holds_when_the_broker_answers_later_from_its_own_thread(
    calendar: Any,
    outcomes: list[Ambiguity | None],
    partial_fills: int,
    duplicate: bool,
    fill_first: bool,
) -> None:
    """A broker with latency is a real broker to the engine (requests after the
    input, answers as inputs from another thread), with every ambiguity."""
    config = PaperBrokerConfig(
        latency_s=0.002,
        partial_fills=partial_fills,
        duplicate_reports=duplicate,
        fill_before_ack=fill_first,
        unknown_submits=tuple(outcomes),
    )
    harness = _trade(calendar, config, ["3", "5"])

    def settled() -> bool:
        with harness.core.bus.reading():
            return all(not o.is_open for o in harness.core.execution.orders(open_only=False))

    assert wait_until(settled)
    harness.core.execution.close()
    _check_invariants(harness)
    # Every request (submit, resubmit, lookup) was made with the sequencer free.
    broker = harness.core.execution._broker
    assert isinstance(broker, WatchedPaper)
    assert broker.held and not any(broker.held)


def test_orders_placed_outside_the_service_are_adopted_each_under_its_own_id(
    calendar: Any,
) -> None:
    from domain.orders import Side, SubmitOrder
    from tests.core.fakes import HoldingBroker

    broker = HoldingBroker()
    harness = make_harness(calendar, broker)
    for cid, symbol in (("dash-1", "SPY"), ("dash-2", "QQQ")):
        broker.open[cid] = SubmitOrder(cid, symbol, Side.BUY, Decimal(3))

    found = harness.core.sweep("periodic sweep")

    assert found.adopted == ("dash-1", "dash-2")
    adopted = harness.core.execution.orders(open_only=True)
    assert len({o.order_id for o in adopted}) == 2
    assert all(o.external and o.decision_id == "" for o in adopted)
    assert {o.status for o in adopted} == {OrderStatus.ACCEPTED}
    # Their fills move the positions the gate sees.
    broker.fill("dash-2", Decimal("50"))
    assert harness.core.portfolio.quantity("QQQ") == 3
    [reconciled] = harness.payloads("BrokerReconciled")
    assert reconciled["reconciliation"]["adopted"] == ["dash-1", "dash-2"]


def test_an_orders_audit_trail_holds_the_brokers_answers_by_order_id(calendar: Any) -> None:
    """Querying the audit log by order id gives the order's whole story: its intent,
    the broker's answers (a lookup after an unclear submission, the fills) and
    every state they moved it to."""
    from audit.records import AuditQuery

    config = PaperBrokerConfig(unknown_submits=(Ambiguity.TAKEN,), partial_fills=2)
    harness = _trade(calendar, config, ["6"])
    [order] = harness.core.execution.orders(open_only=False)

    harness.store.flush()
    trail = list(harness.store.query(AuditQuery(order_id=order.order_id)))

    kinds = [r.event_type for r in trail]
    assert kinds[0] == "OrderUpdated" and kinds.count("BrokerRequestFailed") == 1
    # The lookup's answer (the order filled, in two executions the stream then
    # repeats: those change nothing and are not journaled).
    assert kinds.count("BrokerReportReceived") == 1
    assert order.filled_quantity == 6 and order.status is OrderStatus.FILLED
    answers = {r.seq for r in trail if r.event_type.startswith("Broker")}
    moved = [r for r in trail if r.event_type == "OrderUpdated"][1:]
    assert all(r.caused_by in answers for r in moved)  # each move is caused by an answer here
