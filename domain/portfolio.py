"""Account and positions as the domain sees them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Position:
    """A net position in one symbol. Quantity is negative for a short."""

    symbol: str
    quantity: Decimal
    average_price: Decimal
    market_price: Decimal

    @property
    def market_value(self) -> Decimal:
        return self.quantity * self.market_price

    @property
    def unrealized_pnl(self) -> Decimal:
        return (self.market_price - self.average_price) * self.quantity


@dataclass(frozen=True, slots=True)
class Account:
    """Cash, equity and buying power, in the account's currency."""

    cash: Decimal
    equity: Decimal
    buying_power: Decimal
    currency: str = "USD"
