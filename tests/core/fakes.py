"""An in-process broker that holds orders until the test fills or cancels them,
so that orders can be observed in flight."""

from __future__ import annotations

from decimal import Decimal

from brokers.base import BrokerError, ReportHandler
from domain.orders import BrokerReport, OrderStatus, SubmitOrder
from domain.portfolio import Account, Position


class HoldingBroker:
    name = "holding"

    def __init__(self, cash: Decimal = Decimal("100000")) -> None:
        self.cash = cash
        self.submitted: list[SubmitOrder] = []
        self.open: dict[str, SubmitOrder] = {}
        self._handler: ReportHandler | None = None

    def set_report_handler(self, handler: ReportHandler) -> None:
        self._handler = handler

    def _report(self, report: BrokerReport) -> None:
        assert self._handler is not None
        self._handler(report)

    def submit_order(self, order: SubmitOrder) -> None:
        self.submitted.append(order)
        self.open[order.client_order_id] = order
        self._report(BrokerReport(order.client_order_id, OrderStatus.ACCEPTED, "h1"))

    def fill(self, client_order_id: str, price: Decimal) -> None:
        order = self.open.pop(client_order_id)
        self._report(
            BrokerReport(
                client_order_id, OrderStatus.FILLED, fill_quantity=order.quantity, fill_price=price
            )
        )

    def cancel_order(self, client_order_id: str) -> None:
        if self.open.pop(client_order_id, None) is None:
            raise BrokerError("not open")
        self._report(BrokerReport(client_order_id, OrderStatus.CANCELLED))

    def get_account(self) -> Account:
        return Account(self.cash, self.cash, self.cash)

    def get_positions(self) -> list[Position]:
        return []

    def get_open_orders(self) -> list[BrokerReport]:
        return [BrokerReport(c, OrderStatus.ACCEPTED) for c in self.open]

    def healthy(self) -> bool:
        return True
