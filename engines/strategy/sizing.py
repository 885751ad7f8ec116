"""The sizing step: how a strategy's intent becomes a quantity.

BUY:  floor(equity * fraction / price) whole shares, fraction = 4% by default,
      deliberately below the 5% MaxPositionSizeRule so a default crossover trade
      is approved. A buy that would add to a position is sized the same way; the
      size rule then judges the total.
SELL: long-only (the default) sells what is held, less what is already being
      sold; flat means there is nothing to do and no signal is made. With
      shorting allowed, a sell when flat is sized like a buy.

Either way one order is at most `MAX_ORDER_QUANTITY` shares (the numeric
domain's bound; a larger position is sold over several signals). Sizing fails
closed: a price outside the price domain, or an equity that is not a finite
amount inside the money domain, sizes a buy at 0 (no trade); nothing here
raises on a bad number.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from domain import numeric
from domain.orders import Side
from engines.portfolio import Portfolio

DEFAULT_FRACTION = Decimal("0.04")
ZERO = Decimal(0)


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
            # is_finite first: a Decimal NaN raises on `>`.
            if held.is_finite() and held > 0:
                return min(held, numeric.MAX_ORDER_QUANTITY)
            if not allow_short:
                return ZERO
        equity = portfolio.equity()
        if not (numeric.decimal_price_in_domain(price) and numeric.money_in_domain(equity)):
            return ZERO
        # In the domain, budget / price is at most 1e16 / 1e-4 = 1e20 shares: its
        # whole part (21 digits) fits Decimal's 28, so flooring it cannot fail.
        shares = (equity * self.fraction / price).to_integral_value(rounding=ROUND_FLOOR)
        return min(max(shares, ZERO), numeric.MAX_ORDER_QUANTITY)
