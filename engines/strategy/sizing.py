"""The sizing step: how a strategy's intent becomes a quantity.

BUY:  floor(equity * fraction / price) whole shares, fraction = 4% by default,
      deliberately below the 5% MaxPositionSizeRule so a default crossover trade
      is approved. A buy that would add to a position is sized the same way; the
      size rule then judges the total.
SELL: long-only (the default) sells what is held, less what is already being
      sold; flat means there is nothing to do and no signal is made. With
      shorting allowed, a sell when flat is sized like a buy.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from domain.orders import Side
from engines.portfolio import Portfolio

DEFAULT_FRACTION = Decimal("0.04")


class FractionOfEquitySizer:
    def __init__(self, portfolio: Portfolio, fraction: Decimal = DEFAULT_FRACTION) -> None:
        if not Decimal(0) < fraction <= Decimal(1):
            raise ValueError("sizing fraction must be in (0, 1]")
        self._portfolio = portfolio
        self.fraction = fraction

    def quantity(self, symbol: str, side: Side, price: Decimal, allow_short: bool) -> Decimal:
        """Shares to trade; 0 means no trade."""
        portfolio = self._portfolio
        if side is Side.SELL:
            held = portfolio.quantity(symbol) - portfolio.in_flight_quantity(symbol, Side.SELL)
            if held > 0:
                return held
            if not allow_short:
                return Decimal(0)
        budget = portfolio.equity() * self.fraction
        return (budget / price).to_integral_value(rounding=ROUND_FLOOR) if price > 0 else Decimal(0)
