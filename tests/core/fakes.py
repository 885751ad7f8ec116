"""An in-process broker that holds orders until the test fills or cancels them,
so that orders can be observed in flight."""

from __future__ import annotations

from decimal import Decimal

from brokers.base import BrokerUnavailable, ReportSink
from domain.broker import (
    BrokerHealth,
    BrokerInfo,
    BrokerOrder,
    BrokerReport,
    BrokerSnapshot,
    Execution,
    Outcome,
    ReportSource,
    RequestFailure,
    RequestKind,
)
from domain.orders import OrderStatus, SubmitOrder
from domain.portfolio import Account


class HoldingBroker:
    name = "holding"
    in_process = True  # answers inside each request, as the paper simulator does

    def __init__(self, cash: Decimal = Decimal("100000")) -> None:
        self.cash = cash
        self.submitted: list[SubmitOrder] = []
        self.open: dict[str, SubmitOrder] = {}
        self.up = True  # False: unreachable (every snapshot raises)
        self._sink: ReportSink | None = None

    def start(self, sink: ReportSink) -> None:
        self._sink = sink

    def close(self) -> None:
        self._sink = None

    def _report(self, order: SubmitOrder, status: OrderStatus, **more: object) -> None:
        assert self._sink is not None
        execution = more.pop("execution", None)
        assert execution is None or isinstance(execution, Execution)
        seen = BrokerOrder(
            client_order_id=order.client_order_id,
            broker_order_id="h1",
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            order_type=order.order_type,
            status=status,
            limit_price=order.limit_price,
            time_in_force=order.time_in_force,
            **more,  # type: ignore[arg-type]
        )
        self._sink.on_report(BrokerReport(seen, ReportSource.STREAM, status.value, execution))

    def submit_order(self, order: SubmitOrder) -> None:
        self.submitted.append(order)
        self.open[order.client_order_id] = order
        self._report(order, OrderStatus.ACCEPTED)

    def fill(self, client_order_id: str, price: Decimal) -> None:
        order = self.open.pop(client_order_id)
        self._report(
            order,
            OrderStatus.FILLED,
            filled_quantity=order.quantity,
            average_fill_price=price,
            execution=Execution(f"{client_order_id}-x", order.quantity, price),
        )

    def cancel_order(self, client_order_id: str, broker_order_id: str) -> None:
        assert self._sink is not None
        order = self.open.pop(client_order_id, None)
        if order is None:
            self._sink.on_failure(
                RequestFailure(client_order_id, RequestKind.CANCEL, Outcome.REFUSED, "", "not open")
            )
            return
        self._report(order, OrderStatus.CANCELLED)

    def lookup_order(self, client_order_id: str) -> None:
        assert self._sink is not None
        order = self.open.get(client_order_id)
        if order is None:
            self._sink.on_failure(
                RequestFailure(client_order_id, RequestKind.LOOKUP, Outcome.NOT_FOUND, "", "none")
            )
            return
        self._report(order, OrderStatus.ACCEPTED)

    def snapshot(self, open_client_ids: frozenset[str]) -> BrokerSnapshot:
        if not self.up:
            raise BrokerUnavailable("no route to the broker")
        orders = tuple(
            BrokerOrder(
                o.client_order_id,
                "h1",
                o.symbol,
                o.side,
                o.quantity,
                o.order_type,
                OrderStatus.ACCEPTED,
                o.limit_price,
                o.time_in_force,
            )
            for o in self.open.values()
        )
        return BrokerSnapshot(Account(self.cash, self.cash, self.cash), (), orders)

    def health(self) -> BrokerHealth:
        return BrokerHealth(self.up, detail="" if self.up else "no route to the broker")

    def describe(self) -> BrokerInfo:
        return BrokerInfo(self.name, endpoint="in-process", account="holding")
