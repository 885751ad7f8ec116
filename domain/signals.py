"""Trade signals: what a strategy, or an approved idea, wants to do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from domain.orders import OrderType, Side, TimeInForce, default_time_in_force


@dataclass(frozen=True, slots=True)
class TradeSignal:
    """A sized request to trade, on its way to the risk gate.

    `source` names where it came from: `strategy:<name>` or `idea:<idea id>`.
    `confidence` is in [0, 1]; `reference_price` is the price it was sized at.
    """

    signal_id: str
    source: str
    symbol: str
    side: Side
    quantity: Decimal
    reference_price: Decimal
    confidence: float
    rationale: str
    created_at: datetime
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    """None: the default for the order type."""
    amount: Decimal | None = None
    """A notional order: this much money's worth; `quantity` is the estimate at
    `reference_price` that the gate judges."""

    @property
    def effective_time_in_force(self) -> TimeInForce:
        return self.time_in_force or default_time_in_force(self.order_type)

    @property
    def notional(self) -> Decimal:
        return self.quantity * (self.limit_price or self.reference_price)
