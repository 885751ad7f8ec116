"""What people do by hand, as the core does it: orders placed by a person and the
kill switch. Both become ordinary signals that meet the same risk gate, the same
audit and the same execution as a strategy's; nothing here reaches a broker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from domain.errors import InvalidInput
from domain.orders import ManualOrder, Order, OrderStatus, Side
from domain.risk import RiskDecision
from domain.signals import TradeSignal
from engines.market import MarketPrices
from engines.portfolio import Portfolio

NOTIONAL_QUANTUM = Decimal("1e-9")
MANUAL_CONFIDENCE = 1.0
"""A person's order carries their conviction, not a model's: the confidence rule
is not the place to second-guess it (every limit still applies)."""


def manual_signal(
    order: ManualOrder, source: str, signal_id: str, prices: MarketPrices, now: datetime
) -> TradeSignal:
    """The signal a person's order becomes. An unknown symbol (no market price seen
    yet) is InvalidInput, before anything is recorded."""
    reference = prices.last_price(order.symbol)
    if reference is None:
        raise InvalidInput(
            f"unknown symbol {order.symbol!r}: no market price has been seen for it, so "
            "the order cannot be sized or checked against the market",
            reason="UNKNOWN_SYMBOL",
        )
    quantity = order.quantity
    if order.amount is not None:
        # What the money buys at the last price, to the ninth decimal (rounded down):
        # the estimate every limit judges. The broker fixes the real quantity.
        quantity = (order.amount / reference).quantize(NOTIONAL_QUANTUM, rounding=ROUND_DOWN)
        if quantity <= 0:
            raise InvalidInput(
                f"notional {order.amount} buys nothing at {order.symbol}'s last price {reference}",
                reason="NOTIONAL_TOO_SMALL",
            )
    return TradeSignal(
        signal_id=signal_id,
        source=source,
        symbol=order.symbol,
        side=order.side,
        quantity=quantity,
        reference_price=reference,
        confidence=MANUAL_CONFIDENCE,
        rationale=order.reason or "placed by hand",
        created_at=now,
        order_type=order.order_type,
        limit_price=order.limit_price,
        time_in_force=order.time_in_force,
        amount=order.amount,
    )


def closing_orders(portfolio: Portfolio, reason: str) -> tuple[list[ManualOrder], list[str]]:
    """Market orders that close every position, less what is already being closed;
    and the symbols left for later because an order in the closing direction is
    waiting for the broker to answer its cancel (it may yet fill: closing the
    whole position now could overshoot it)."""
    closing = []
    deferred = []
    for position in portfolio.positions():
        side = Side.SELL if position.quantity > 0 else Side.BUY
        if any(
            o.status is OrderStatus.PENDING_CANCEL
            for o in portfolio.in_flight(position.symbol, side)
        ):
            deferred.append(position.symbol)
            continue
        quantity = abs(position.quantity) - portfolio.in_flight_quantity(position.symbol, side)
        if quantity > 0:
            closing.append(ManualOrder(position.symbol, side, quantity, reason=reason))
    return closing, deferred


@dataclass(frozen=True, slots=True)
class FlattenReport:
    """What the kill switch did: orders cancelled, closing decisions and orders, and
    symbols not closed yet because a cancel there is still pending (flatten again
    once the broker has answered)."""

    cancelled: list[Order]
    decisions: list[RiskDecision]
    orders: list[Order]
    deferred: list[str]
