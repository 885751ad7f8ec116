"""A broker simulated in process. Market orders fill at once at the last price
plus slippage; a limit order fills at once if marketable, otherwise it rests
until cancelled. Cash, positions and equity are tracked in Decimal."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from brokers.base import BrokerError, ReportHandler
from brokers.paper.config import PaperBrokerConfig
from domain.orders import BrokerReport, OrderStatus, OrderType, Side, SubmitOrder
from domain.portfolio import Account, Position

ZERO = Decimal(0)
PriceSource = Callable[[str], Decimal | None]
_CENT_FRACTION = Decimal("0.0001")


@dataclass(slots=True)
class _Holding:
    quantity: Decimal = ZERO
    cost: Decimal = ZERO  # average price * quantity


@dataclass(frozen=True, slots=True)
class RecordedFill:
    """A fill from the audit log, re-booked when the simulated account is rebuilt."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal


class PaperBroker:
    """`fills`: what the audit log recorded, oldest first. The simulated account lives
    in this process, so after a restart it is rebuilt from them."""

    name = "paper"

    def __init__(
        self,
        prices: PriceSource,
        config: PaperBrokerConfig | None = None,
        fills: Iterable[RecordedFill] = (),
    ) -> None:
        self.config = config or PaperBrokerConfig()
        self._prices = prices
        self._cash = self.config.starting_cash
        self._holdings: dict[str, _Holding] = {}
        self._resting: dict[str, SubmitOrder] = {}
        self._seen: set[str] = set()
        self._handler: ReportHandler | None = None
        self._next_id = 0
        for fill in fills:
            self._seen.add(fill.client_order_id)
            self._book(fill.symbol, fill.side, fill.quantity, fill.price)

    def set_report_handler(self, handler: ReportHandler) -> None:
        self._handler = handler

    def healthy(self) -> bool:
        return True

    def _report(self, report: BrokerReport) -> None:
        if self._handler is None:
            raise BrokerError("paper broker has no report handler")
        self._handler(report)

    def submit_order(self, order: SubmitOrder) -> None:
        if order.client_order_id in self._seen:
            raise BrokerError(f"duplicate client_order_id {order.client_order_id}")
        self._seen.add(order.client_order_id)
        self._next_id += 1
        broker_id = f"paper-{self._next_id}"
        reason = self._refusal(order)
        if reason:
            self._report(
                BrokerReport(order.client_order_id, OrderStatus.REJECTED, broker_id, reason=reason)
            )
            return
        self._report(BrokerReport(order.client_order_id, OrderStatus.ACCEPTED, broker_id))
        price = self._fill_price(order)
        if price is None:
            self._resting[order.client_order_id] = order
            return
        self._fill(order, price, broker_id)

    def _refusal(self, order: SubmitOrder) -> str:
        if order.quantity <= 0:
            return "quantity must be positive"
        last = self._prices(order.symbol)
        if last is None:
            return f"no market price for {order.symbol}"
        held = self._holdings.get(order.symbol, _Holding()).quantity
        if order.side is Side.SELL and not self.config.allow_short and order.quantity > held:
            return f"insufficient position: sell {order.quantity} > held {held}"
        if order.side is Side.BUY and order.quantity * last > self._cash:
            need = order.quantity * last
            return f"insufficient buying power: need {need:.2f}, cash {self._cash:.2f}"
        return ""

    def _fill_price(self, order: SubmitOrder) -> Decimal | None:
        last = self._prices(order.symbol)
        assert last is not None
        slip = last * self.config.slippage_bps / Decimal(10_000)
        price = (last + slip if order.side is Side.BUY else last - slip).quantize(_CENT_FRACTION)
        if order.order_type is OrderType.LIMIT and order.limit_price is not None:
            marketable = (
                price <= order.limit_price if order.side is Side.BUY else price >= order.limit_price
            )
            return price if marketable else None
        return price

    def _fill(self, order: SubmitOrder, price: Decimal, broker_id: str) -> None:
        self._book(order.symbol, order.side, order.quantity, price)
        self._report(
            BrokerReport(
                order.client_order_id,
                OrderStatus.FILLED,
                broker_id,
                fill_quantity=order.quantity,
                fill_price=price,
            )
        )

    def _book(self, symbol: str, side: Side, quantity: Decimal, price: Decimal) -> None:
        holding = self._holdings.setdefault(symbol, _Holding())
        signed = quantity if side is Side.BUY else -quantity
        if holding.quantity and (holding.quantity > 0) != (signed > 0):
            # Reducing: realise against the average cost.
            average = holding.cost / holding.quantity
            holding.cost += signed * average
        else:
            holding.cost += signed * price
        holding.quantity += signed
        if holding.quantity == 0:
            holding.cost = ZERO
        self._cash -= signed * price

    def cancel_order(self, client_order_id: str) -> None:
        if self._resting.pop(client_order_id, None) is None:
            raise BrokerError(f"order {client_order_id} is not open at the broker")
        self._report(
            BrokerReport(client_order_id, OrderStatus.CANCELLED, reason="cancelled on request")
        )

    def get_account(self) -> Account:
        equity = self._cash + sum(
            (
                h.quantity * (self._prices(s) or h.cost / h.quantity)
                for s, h in self._holdings.items()
                if h.quantity
            ),
            ZERO,
        )
        return Account(cash=self._cash, equity=equity, buying_power=max(self._cash, ZERO))

    def get_positions(self) -> list[Position]:
        positions = []
        for symbol, h in sorted(self._holdings.items()):
            if not h.quantity:
                continue
            average = (h.cost / h.quantity).quantize(_CENT_FRACTION)
            positions.append(Position(symbol, h.quantity, average, self._prices(symbol) or average))
        return positions

    def get_open_orders(self) -> list[BrokerReport]:
        return [
            BrokerReport(o.client_order_id, OrderStatus.ACCEPTED) for o in self._resting.values()
        ]
