"""The order state machine, and the paper broker's fills and refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.paper.adapter import PaperBroker
from brokers.paper.config import PaperBrokerConfig
from domain.broker import BrokerReport, Outcome, RequestFailure
from domain.errors import IllegalTransition
from domain.orders import (
    Order,
    OrderStatus,
    OrderType,
    Side,
    SubmitOrder,
)
from tests.support.market import SESSION

NOW = SESSION


def new_order(quantity: str = "10") -> Order:
    return Order(
        order_id="o1",
        client_order_id="ts-d1",
        decision_id="d1",
        symbol="SPY",
        side=Side.BUY,
        quantity=Decimal(quantity),
        order_type=OrderType.MARKET,
        limit_price=None,
        status=OrderStatus.NEW,
        filled_quantity=Decimal(0),
        average_fill_price=Decimal(0),
        created_at=NOW,
        updated_at=NOW,
    )


def test_partial_fills_accumulate_to_a_fill_with_the_average_price() -> None:
    order = new_order()
    order = order.transition(OrderStatus.ACCEPTED, NOW)
    order = order.transition(
        OrderStatus.PARTIALLY_FILLED, NOW, fill_quantity=Decimal(4), fill_price=Decimal(100)
    )
    order = order.transition(
        OrderStatus.FILLED, NOW, fill_quantity=Decimal(6), fill_price=Decimal(110)
    )

    assert order.filled_quantity == 10
    assert order.average_fill_price == Decimal(106)
    assert [h.status for h in order.history] == [
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    assert not order.is_open


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([OrderStatus.FILLED], OrderStatus.CANCELLED),
        ([OrderStatus.CANCELLED], OrderStatus.ACCEPTED),
        ([OrderStatus.REJECTED], OrderStatus.FILLED),
        ([OrderStatus.ACCEPTED], OrderStatus.NEW),
        ([OrderStatus.ACCEPTED, OrderStatus.EXPIRED], OrderStatus.ACCEPTED),
    ],
)
def test_illegal_transitions_are_refused(path: list[OrderStatus], illegal: OrderStatus) -> None:
    order = new_order()
    for status in path:
        fill = Decimal(10) if status is OrderStatus.FILLED else Decimal(0)
        order = order.transition(status, NOW, fill_quantity=fill, fill_price=Decimal(1))
    with pytest.raises(IllegalTransition):
        order.transition(illegal, NOW)


def test_an_overfill_is_refused() -> None:
    with pytest.raises(IllegalTransition, match="overfilled"):
        new_order("5").transition(OrderStatus.FILLED, NOW, fill_quantity=Decimal(6))


class Sink:
    """Collects what the broker answers."""

    def __init__(self) -> None:
        self.reports: list[BrokerReport] = []
        self.failures: list[RequestFailure] = []

    def on_report(self, report: BrokerReport) -> None:
        self.reports.append(report)

    def on_failure(self, failure: RequestFailure) -> None:
        self.failures.append(failure)

    def on_gap(self, reason: str) -> None:
        raise AssertionError(f"the paper broker has no stream to lose: {reason}")


def paper(prices: dict[str, Decimal], cash: str = "10000") -> tuple[PaperBroker, Sink]:
    sink = Sink()
    broker = PaperBroker(
        prices.get, PaperBrokerConfig(starting_cash=Decimal(cash), slippage_bps=Decimal(10))
    )
    broker.start(sink)
    return broker, sink


def test_paper_market_orders_fill_at_the_last_price_plus_slippage() -> None:
    broker, sink = paper({"SPY": Decimal("100")})
    broker.submit_order(SubmitOrder("c1", "SPY", Side.BUY, Decimal(10)))
    broker.submit_order(SubmitOrder("c2", "SPY", Side.SELL, Decimal(4)))

    reports = sink.reports
    assert [r.order.status for r in reports] == [OrderStatus.ACCEPTED, OrderStatus.FILLED] * 2
    assert reports[1].order.average_fill_price == Decimal("100.1000")  # buyer pays 10 bps
    assert reports[3].order.average_fill_price == Decimal("99.9000")  # seller receives less
    assert reports[1].execution is not None and reports[1].execution.quantity == 10
    account = broker.account()
    assert account.cash == Decimal(10000) - Decimal("1001.0") + Decimal("399.6")
    [position] = broker.positions()
    assert position.quantity == 6 and position.average_price == Decimal("100.1000")
    assert account.equity == account.cash + 6 * Decimal(100)


def test_paper_refuses_what_a_cash_account_cannot_do() -> None:
    broker, sink = paper({"SPY": Decimal("100")}, cash="500")
    broker.submit_order(SubmitOrder("c1", "SPY", Side.BUY, Decimal(10)))
    broker.submit_order(SubmitOrder("c2", "SPY", Side.SELL, Decimal(1)))
    broker.submit_order(SubmitOrder("c3", "QQQ", Side.BUY, Decimal(1)))

    assert sink.reports == []
    assert [f.outcome for f in sink.failures] == [Outcome.REFUSED] * 3
    assert "insufficient buying power" in sink.failures[0].message
    assert "insufficient qty available" in sink.failures[1].message
    assert "no market price" in sink.failures[2].message
    assert broker.account().cash == Decimal(500)


def test_paper_limit_orders_rest_until_cancelled_when_not_marketable() -> None:
    broker, sink = paper({"SPY": Decimal("100")})
    broker.submit_order(
        SubmitOrder("c1", "SPY", Side.BUY, Decimal(1), OrderType.LIMIT, Decimal(90))
    )
    assert [r.order.status for r in sink.reports] == [OrderStatus.ACCEPTED]
    assert [o.client_order_id for o in broker.snapshot(frozenset()).orders] == ["c1"]

    broker.cancel_order("c1", sink.reports[0].order.broker_order_id)
    assert sink.reports[-1].order.status is OrderStatus.CANCELLED
    assert broker.snapshot(frozenset()).orders == ()
